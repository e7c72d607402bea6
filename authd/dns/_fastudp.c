/* authd.dns._fastudp: the UDP shell's receive/answer/send loop, batched (issue 12).
 *
 * Part of the trio shell, not of the pure core: it only moves datagrams. One call of
 * `drain` receives up to BATCH datagrams with one recvmmsg(2), answers each from the
 * serving index's exact table (`ServingIndex.exact_udp`: query bytes after the ID -> reply
 * bytes after the ID, or a weighted `(cumulative, replies)` pair picked with the index's
 * random source), hands every other datagram to a Python callable (the Python loop's miss
 * branch, with its own exception boundary; a question alone it reads itself, as
 * `authd.dns.wire.read_query` does, answers an owner's own plain RRset itself as
 * `CompiledAnswers._shape_of`'s first branch does (`answer_plain`), and splices the answer
 * `CompiledAnswers.udp_read` decides for any other), and sends the batch's replies with one
 * sendmmsg(2). It repeats until the socket is empty or the budget is spent. What it answers
 * and counts is what `authd.dns.server.serve_udp`'s Python loop answers and counts, byte for
 * byte (tests/test_fastudp.py checks it); it only saves the per-datagram syscalls and
 * bytecode, as NSD does with recvmmsg/sendmmsg.
 *
 * Optional: authd runs without it (setuptools builds it with optional=True).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
/* as the Python loop's recvfrom(4096): a longer datagram is cut to its first 4096 octets */
#define RECV_SIZE 4096
/* the longest reply `answer_plain` writes: a UDP message without EDNS (RFC 1035 §4.2.1) */
#define PLAIN_MAX 512

typedef struct {
    unsigned char buf[BATCH][RECV_SIZE];
    struct sockaddr_storage name[BATCH];
    struct iovec iov_in[BATCH];
    struct mmsghdr in[BATCH];
    struct iovec iov_out[BATCH][3];
    unsigned char head[BATCH][12]; /* a header C writes for `read`'s answers */
    struct mmsghdr out[BATCH];
    PyObject *keep[BATCH]; /* each reply stays alive until sendmmsg has sent it (or NULL) */
    unsigned char plain[BATCH][PLAIN_MAX]; /* the replies `answer_plain` writes */
    int busy;              /* `drain` is not reentrant: a fallback must not call it */
    int ran;               /* Python code that might close the socket ran for a datagram */
} Buffers;

/* One set of buffers per thread: a fallback runs Python code, which may let another thread
 * (another trio run) call `drain` meanwhile. Freed when the thread exits. */
static _Thread_local Buffers *bufs;
static pthread_key_t bufs_key;
static int bufs_key_made;
static PyObject *one; /* the int 1 */

static Buffers *
thread_buffers(void)
{
    if (bufs != NULL)
        return bufs;
    Buffers *b = calloc(1, sizeof(Buffers));
    if (b == NULL)
        return NULL;
    for (int i = 0; i < BATCH; i++) {
        b->iov_in[i].iov_base = b->buf[i];
        b->iov_in[i].iov_len = RECV_SIZE;
        b->in[i].msg_hdr.msg_iov = &b->iov_in[i];
        b->in[i].msg_hdr.msg_iovlen = 1;
        b->in[i].msg_hdr.msg_name = &b->name[i];
        b->out[i].msg_hdr.msg_iov = b->iov_out[i];
    }
    if (pthread_setspecific(bufs_key, b) != 0) {
        free(b);
        return NULL;
    }
    bufs = b;
    return b;
}

/* The source address as Python's socket module gives it: (host, port) for IPv4,
 * (host, port, flowinfo, scope_id) for IPv6 (CPython's makesockaddr). */
static PyObject *
address_of(const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    PyErr_Format(PyExc_OSError, "unexpected address family %d", (int)ss->ss_family);
    return NULL;
}

/* hit[1][bisect_right(hit[0], random())] for a weighted entry, as a new reference; NULL
 * with no exception set when the entry is not the (list, list) pair of bytes the index
 * stores (the Python fallback then answers the datagram, raising as the Python loop
 * would); NULL with an exception set when random() itself fails. */
static PyObject *
pick(PyObject *hit, PyObject *random)
{
    if (!PyTuple_CheckExact(hit) || PyTuple_GET_SIZE(hit) != 2)
        return NULL;
    PyObject *cumulative = PyTuple_GET_ITEM(hit, 0);
    PyObject *replies = PyTuple_GET_ITEM(hit, 1);
    if (!PyList_CheckExact(cumulative) || !PyList_CheckExact(replies))
        return NULL;
    PyObject *x = PyObject_CallNoArgs(random);
    if (x == NULL)
        return NULL;
    /* bisect.bisect_right: the first index whose item is greater than x */
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(cumulative);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *item = PyList_GET_ITEM(cumulative, mid);
        Py_INCREF(item);
        int less = PyObject_RichCompareBool(x, item, Py_LT);
        Py_DECREF(item);
        if (less < 0) {
            Py_DECREF(x);
            PyErr_Clear();
            return NULL;
        }
        if (less)
            hi = mid;
        else
            lo = mid + 1;
        if (hi > PyList_GET_SIZE(cumulative)) /* the comparison changed the list */
            hi = PyList_GET_SIZE(cumulative);
    }
    Py_DECREF(x);
    if (lo >= PyList_GET_SIZE(replies))
        return NULL;
    PyObject *chosen = PyList_GET_ITEM(replies, lo);
    if (!PyBytes_CheckExact(chosen))
        return NULL;
    Py_INCREF(chosen);
    return chosen;
}

/* counts[key] = counts.get(key, 0) + 1; -1 with an exception on failure */
static int
count(PyObject *counts, PyObject *key)
{
    PyObject *n = PyDict_GetItemWithError(counts, key);
    if (n == NULL) {
        if (PyErr_Occurred())
            return -1;
        return PyDict_SetItem(counts, key, one);
    }
    Py_INCREF(n);
    PyObject *m = PyNumber_Add(n, one);
    Py_DECREF(n);
    if (m == NULL)
        return -1;
    int rc = PyDict_SetItem(counts, key, m);
    Py_DECREF(m);
    return rc;
}

/* The question of a query that carries it alone, read as `authd.dns.wire.read_query` reads
 * it (the same reader, written twice: tests/test_fastudp.py checks the two against each other
 * on generated wires, accept/decline and the key). Accepted only: at least 17 octets, QR=0
 * and opcode QUERY (RFC 1035 §4.1.1), QDCOUNT 1 and AN/NS/AR 0, an uncompressed name of
 * labels of at most 63 octets (RFC 1035 §4.1.4: a length over 63 is a pointer or a reserved
 * label type) and at most 255 octets in all (RFC 1035 §2.3.4), class IN, and nothing after
 * the question. `scan_question` says whether it is that shape (1, with the labels' offsets,
 * QTYPE and qend, the offset past the question; 0 for any other shape: Python's reader then
 * decides); `read_question` returns the name's key, the lowered labels (ASCII A-Z only, as
 * bytes.lower) and the root's b"", as a new tuple, with QTYPE and qend; NULL with no
 * exception for any other shape, NULL with an exception when memory runs out. */
static int
scan_question(const unsigned char *data, Py_ssize_t n, Py_ssize_t *starts, int *count,
              int *qtype, Py_ssize_t *qend)
{
    static const unsigned char qd1[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    if (n < 17 || (data[2] & 0xF8) || memcmp(data + 4, qd1, 8) != 0)
        return 0;
    int nlabels = 0;
    Py_ssize_t i = 12;
    for (;;) {
        unsigned int length = data[i];
        if (length == 0)
            break;
        if (length > 63)
            return 0;
        if (nlabels == 128)  /* more labels than 255 octets can hold */
            return 0;
        starts[nlabels++] = i;
        i += (Py_ssize_t)length + 1;
        if (i >= n)
            return 0;
    }
    if (i > 266) /* a name of at most 255 octets, the root's included */
        return 0;
    Py_ssize_t end = i + 5;
    if (end != n || data[i + 3] != 0 || data[i + 4] != 1) /* class IN; no records after */
        return 0;
    *count = nlabels;
    *qtype = data[i + 1] << 8 | data[i + 2];
    *qend = end;
    return 1;
}

/* `scan_question`'s question as the key `read` is given (see above). */
static PyObject *
read_question(const unsigned char *data, Py_ssize_t n, int *qtype, Py_ssize_t *qend)
{
    Py_ssize_t starts[128];
    int nlabels = 0;
    if (!scan_question(data, n, starts, &nlabels, qtype, qend))
        return NULL;
    PyObject *key = PyTuple_New(nlabels + 1);
    if (key == NULL)
        return NULL;
    for (int j = 0; j < nlabels; j++) {
        Py_ssize_t at = starts[j];
        Py_ssize_t length = data[at];
        PyObject *label = PyBytes_FromStringAndSize(NULL, length);
        if (label == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        char *out = PyBytes_AS_STRING(label);
        const unsigned char *in = data + at + 1;
        for (Py_ssize_t c = 0; c < length; c++) {
            unsigned char ch = in[c];
            out[c] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        PyTuple_SET_ITEM(key, j, label);
    }
    PyObject *root = PyBytes_FromStringAndSize("", 0);
    if (root == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    PyTuple_SET_ITEM(key, nlabels, root);
    return key;
}

/* Send out[0:n]; a datagram the kernel refuses (full buffer, unreachable client) is dropped,
 * as the Python loop drops it on OSError from sendto. */
static void
send_all(int fd, int n)
{
    int off = 0;
    while (off < n && fd >= 0) { /* (a closed socket: every send fails, EBADF) */
        int sent = sendmmsg(fd, bufs->out + off, (unsigned int)(n - off), MSG_DONTWAIT);
        if (sent > 0)
            off += sent;
        else if (sent < 0 && errno == EINTR)
            continue;
        else
            off += 1;
    }
    for (int i = 0; i < n; i++)
        Py_CLEAR(bufs->keep[i]);
}

/* What `answer_plain` is given (the `plain` argument of `drain`). */
typedef struct {
    PyTypeObject *type;  /* authd.dns.answer.Plain */
    PyObject *excluded;  /* the QTYPEs the compiled path leaves to the pipeline (a set) */
    PyObject *seen;      /* the doorkeeper, seen(query after the ID) -> bool; or NULL, and: */
    PyObject *marks;     /* its marks, run here (`doorkeeper`), with */
    long epoch;          /* the count of marks that starts them over */
    PyObject *keep;      /* keep(query after the ID, reply after the ID, zone key), or NULL */
    long flags;          /* the header flags of the answer (QR|AA) */
    Py_ssize_t limit;    /* the longest response (at most PLAIN_MAX) */
    /* with these (NULL: not given), a CNAME owner's compiled answer too, once made: */
    PyObject *states;       /* CompiledAnswers._states: zone key -> _ZoneState */
    PyTypeObject *template; /* authd.dns.compiled.Template */
} PlainRule;

/* What `census_count` counts into (the `census` argument of `drain`; authd.metrics.Census). */
#define CENSUS_TYPES 16  /* QTYPE slots */
#define CENSUS_RCODES 16 /* the header's four bits of rcode (RFC 1035 §4.1.1) */
typedef struct {
    int ntypes;
    int types[CENSUS_TYPES];    /* the QTYPE of each slot */
    unsigned long long *counts; /* replies by [slot * CENSUS_RCODES + rcode] */
    PyObject *pairs;            /* a set: the (name, type) pairs answered with records */
    Py_buffer view;             /* of the counts' buffer, held for the call */
} Census;

/* What one `drain` call answers with (borrowed references, held by the call). */
typedef struct {
    PyObject *exact, *fallback, *counts, *random; /* exact, counts: NULL for None */
    PyObject *direct, *rest, *tally, *unanswered; /* direct, tally: NULL for None */
    PyObject *read;                               /* NULL for None */
    long copied; /* the header bits a response copies from the query (with `read`) */
    PyObject *zones; /* NULL for None: the zone table `read` is given a zone from */
    PyObject *sock;  /* NULL for a bare fd: the socket, whose fileno() is read per batch */
    int has_plain;   /* with `plain` (and zones): an owner's own plain RRset answered here */
    PlainRule plain;
    int has_census;  /* with `census`: the replies C sends itself counted there (`census_count`) */
    Census census;
} Loop;

/* tally[data[2:] + status] += 1 */
static int
tally_status(const Loop *L, const unsigned char *data, Py_ssize_t len, const char *status,
             Py_ssize_t slen)
{
    Py_ssize_t klen = len < 2 ? 0 : len - 2;
    PyObject *key = PyBytes_FromStringAndSize(NULL, klen + slen);
    if (key == NULL)
        return -1;
    char *k = PyBytes_AS_STRING(key);
    memcpy(k, data + (len - klen), (size_t)klen);
    memcpy(k + klen, status, (size_t)slen);
    int rc = count(L->tally, key);
    Py_DECREF(key);
    return rc;
}

/* tally[data[2:] + status] += 1, the status being reply[2:4] + reply[6:8], or `unanswered`
 * for an empty reply (`authd.metrics.status_of`, as the Python loop counts) */
static int
tally_reply(const Loop *L, const unsigned char *data, Py_ssize_t len, PyObject *reply)
{
    const char *r = PyBytes_AS_STRING(reply);
    Py_ssize_t rlen = PyBytes_GET_SIZE(reply);
    Py_ssize_t a = rlen <= 2 ? 0 : (rlen < 4 ? rlen - 2 : 2); /* len(reply[2:4]) */
    Py_ssize_t b = rlen <= 6 ? 0 : (rlen < 8 ? rlen - 6 : 2); /* len(reply[6:8]) */
    const char *status = r;
    Py_ssize_t slen = a + b;
    if (rlen == 0) {
        status = PyBytes_AS_STRING(L->unanswered);
        slen = PyBytes_GET_SIZE(L->unanswered);
    }
    char both[4];
    if (rlen != 0) {
        memcpy(both, r + 2, (size_t)a);
        memcpy(both + a, r + 6, (size_t)b);
        status = both;
    }
    return tally_status(L, data, len, status, slen);
}

/* The 12 octets of a response's header (RFC 1035 §4.1.1): the query's ID, `flags` with the
 * bits a response copies from the query (`copied`: RD), QDCOUNT 1, then ANCOUNT, NSCOUNT
 * and ARCOUNT (each at most 0xFFFF: the callers check). */
static void
write_head(unsigned char *h, const unsigned char *query, long flags, long copied, long an,
           long ns, long ar)
{
    flags |= (long)(query[2] << 8 | query[3]) & copied;
    h[0] = query[0];
    h[1] = query[1];
    h[2] = (unsigned char)(flags >> 8);
    h[3] = (unsigned char)flags;
    h[4] = 0;
    h[5] = 1;
    h[6] = (unsigned char)(an >> 8);
    h[7] = (unsigned char)an;
    h[8] = (unsigned char)(ns >> 8);
    h[9] = (unsigned char)ns;
    h[10] = (unsigned char)(ar >> 8);
    h[11] = (unsigned char)ar;
}

/* Count a reply C sends itself, to a question `scan_question` accepts (`qend` past it), in
 * the census instead of the tally: one more in its (QTYPE, rcode) slot, and for NOERROR with
 * answer records its (name, type) pair into `pairs`: the name's wire octets lowered as
 * bytes.lower lowers them (RFC 4343 §3: names compare without ASCII case), then QTYPE, the
 * pair `authd.metrics.QueryTally._count` makes of the same query. Returns 1 when counted; 0
 * when the tally counts it (a QTYPE without a slot; NOERROR without answer records, whose
 * empty-answer check needs the name; FORMERR and rcode 15, which the fold types apart); -1
 * with an exception set (nothing counted). */
static int
census_count(const Loop *L, const unsigned char *data, Py_ssize_t qend, long flags, long an)
{
    const Census *C = &L->census;
    int qtype = data[qend - 4] << 8 | data[qend - 3];
    int rcode = (int)(flags & 0x0F);
    int slot = 0;
    while (slot < C->ntypes && C->types[slot] != qtype)
        slot++;
    if (slot == C->ntypes || rcode == 1 || rcode == 15 || (rcode == 0 && an == 0))
        return 0;
    if (rcode == 0) {
        Py_ssize_t nlen = qend - 4 - 12;
        PyObject *pair = PyBytes_FromStringAndSize(NULL, nlen + 2);
        if (pair == NULL)
            return -1;
        char *p = PyBytes_AS_STRING(pair);
        const unsigned char *name = data + 12;
        for (Py_ssize_t c = 0; c < nlen; c++) {
            unsigned char ch = name[c];
            p[c] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        p[nlen] = (char)data[qend - 4];
        p[nlen + 1] = (char)data[qend - 3];
        int rc = PySet_Add(C->pairs, pair);
        Py_DECREF(pair);
        if (rc < 0)
            return -1;
    }
    C->counts[slot * CENSUS_RCODES + rcode] += 1;
    return 1;
}

/* `read`'s answer (flags, ANCOUNT, NSCOUNT, ARCOUNT, sections, okey), as
 * `CompiledAnswers._spliced` writes it for a query without EDNS: the query's ID, the flags
 * with the bits a response copies from the query (RD, RFC 1035 §4.1.1), QDCOUNT 1 and the
 * counts, the question as asked, the sections; sent without a copy (three iovecs) and
 * counted in tally by query and status as `tally_reply` counts. 0 when queued; -1 when the
 * answer is not that shape (with or without an exception set). */
static int
splice(const Loop *L, int i, const unsigned char *data, Py_ssize_t len, Py_ssize_t qend,
       PyObject *got, int *nout)
{
    if (PyTuple_GET_SIZE(got) != 6)
        return -1;
    long v[4];
    for (int j = 0; j < 4; j++) {
        PyObject *n = PyTuple_GET_ITEM(got, j);
        if (!PyLong_CheckExact(n))
            return -1;
        v[j] = PyLong_AsLong(n);
        if (v[j] < 0 || v[j] > 0xFFFF)
            return -1; /* (an overflow's exception is the caller's to clear) */
    }
    PyObject *body = PyTuple_GET_ITEM(got, 4);
    if (!PyBytes_CheckExact(body))
        return -1;
    unsigned char *h = bufs->head[*nout];
    write_head(h, data, v[0], L->copied, v[1], v[2], v[3]);
    int counted = L->has_census ? census_count(L, data, qend, v[0], v[1]) : 0;
    if (counted < 0)
        return -1;
    if (!counted && L->tally != NULL) {
        char status[4] = {(char)h[2], (char)h[3], (char)h[6], (char)h[7]};
        if (tally_status(L, data, len, status, 4) < 0)
            return -1;
    }
    struct mmsghdr *m = &bufs->out[*nout];
    bufs->iov_out[*nout][0].iov_base = h;
    bufs->iov_out[*nout][0].iov_len = 12;
    bufs->iov_out[*nout][1].iov_base = (void *)(data + 12);
    bufs->iov_out[*nout][1].iov_len = (size_t)(qend - 12);
    bufs->iov_out[*nout][2].iov_base = PyBytes_AS_STRING(body);
    bufs->iov_out[*nout][2].iov_len = (size_t)PyBytes_GET_SIZE(body);
    m->msg_hdr.msg_iovlen = 3;
    m->msg_hdr.msg_name = &bufs->name[i];
    m->msg_hdr.msg_namelen = bufs->in[i].msg_hdr.msg_namelen;
    Py_INCREF(body);
    bufs->keep[(*nout)++] = body;
    return 0;
}

/* `CompiledAnswers.seen_before` run here, on its marks (a bytearray: a power of two of
 * marks, then their count in two octets, big-endian): 1 when the key's slot (its hash, as
 * Python's hash() gives it, masked) is marked; else marks it and counts the mark, starting
 * the marks over (in place) at `epoch`, and 0; -1 with an exception set. */
static int
doorkeeper(PyObject *marks, long epoch, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return -1;
    Py_ssize_t size = PyByteArray_GET_SIZE(marks);
    if (size < 3 || ((size - 2) & (size - 3)) != 0) { /* changed under us: none of ours */
        PyErr_SetString(PyExc_ValueError, "doorkeeper marks must be 2**k + 2 octets");
        return -1;
    }
    unsigned char *m = (unsigned char *)PyByteArray_AS_STRING(marks);
    size_t slot = (size_t)h & (size_t)(size - 3);
    if (m[slot])
        return 1;
    m[slot] = 1;
    long n = (long)(m[size - 2] << 8 | m[size - 1]) + 1;
    if (n >= epoch) {
        memset(m, 0, (size_t)size);
        n = 0;
    }
    m[size - 2] = (unsigned char)(n >> 8);
    m[size - 1] = (unsigned char)n;
    return 0;
}

/* Attribute names `answer_plain` reads (interned once, at import). */
static PyObject *s_dnames, *s_cuts, *s_nodes, *s_okey, *s_rrset, *s_tails, *s_fileno;
static PyObject *s_zone, *s_owners, *s_fixed, *s_shape, *s_cname_type; /* (the int 5) */

/* The deepest zone holding the name (borrowed; Py_None when none does), as
 * CompiledAnswers._shape_of searches table.zones: the key's suffixes, longest first. A
 * table of a few zones keyed by tuples of bytes (as ZoneTable keeps it) is searched by
 * comparing each zone's key with the name's last labels, which is the dict's own tuple
 * equality without a slice and a hash per suffix; any other table by slicing. NULL with an
 * exception set on failure. */
#define FEW_ZONES 8
static PyObject *
find_zone(PyObject *zones, PyObject *key)
{
    Py_ssize_t size = PyTuple_GET_SIZE(key);
    if (PyDict_GET_SIZE(zones) <= FEW_ZONES) {
        PyObject *zkey, *zone, *best = Py_None;
        Py_ssize_t pos = 0, best_len = -1;
        int plain = 1;
        while (plain && PyDict_Next(zones, &pos, &zkey, &zone)) {
            if (!PyTuple_CheckExact(zkey)) {
                plain = 0;
                break;
            }
            Py_ssize_t m = PyTuple_GET_SIZE(zkey);
            if (m > size || m <= best_len)
                continue;
            int same = 1;
            for (Py_ssize_t j = m - 1; j >= 0 && same; j--) { /* the root's b"" first */
                PyObject *a = PyTuple_GET_ITEM(zkey, j);
                PyObject *b = PyTuple_GET_ITEM(key, size - m + j);
                if (!PyBytes_CheckExact(a)) {
                    plain = 0;
                    same = 0;
                } else if (a != b) {
                    same = PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b) &&
                           memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b),
                                  (size_t)PyBytes_GET_SIZE(a)) == 0;
                }
            }
            if (same && plain) {
                best = zone;
                best_len = m;
            }
        }
        if (plain)
            return best;
    }
    for (Py_ssize_t j = 0; j < size; j++) {
        PyObject *suffix = PyTuple_GetSlice(key, j, size);
        if (suffix == NULL)
            return NULL;
        PyObject *z = PyDict_GetItemWithError(zones, suffix);
        Py_DECREF(suffix);
        if (z != NULL)
            return z;
        if (PyErr_Occurred())
            return NULL;
    }
    return Py_None;
}

/* An owner's own plain RRset, decided and spliced here as `CompiledAnswers._shape_of`'s first
 * branch and `udp_read` do it, for a question `read_question` read (no EDNS): QTYPE not in
 * the compiled path's excluded types, `zone` (the deepest zone holding the name) without a
 * DNAME (RFC 6672 §3.2), no cut at or above the name (RFC 1034 §4.3.2 step 3b),
 * zone.nodes[key][qtype] a `Plain` whose rrset has load-time `tails`, and the response within
 * the limit (512 octets without EDNS, RFC 1035 §4.2.1). The response: the ID, QR|AA with the
 * bits copied from the query (RD, RFC 1035 §4.1.1), QDCOUNT 1, ANCOUNT len(tails), the
 * question as asked, then per tail a pointer to the question's name (RFC 1035 §4.1.4) and the
 * tail. On its second sight (`seen(ekey)`, the doorkeeper `udp_read` asks) it goes to
 * keep(ekey, response after the ID, zone.okey), the exact table, as `udp_read` keeps it.
 * Counted in tally as `splice` counts. Every object is read through the C API with a new
 * reference held while used: a Python call (seen, keep, a property) may change the zone.
 * Returns 1 when queued, 0 when the answer is not that shape (read decides it), -1 with an
 * exception set (read is then asked, and decides and raises as it would have). */
static int
answer_plain(const Loop *L, int i, const unsigned char *data, Py_ssize_t len, Py_ssize_t qend,
             PyObject *key, PyObject *qtype, PyObject *zone, PyObject *ekey, int *nout)
{
    const PlainRule *P = &L->plain;
    int rc = -1, t;
    PyObject *dnames = NULL, *cuts = NULL, *okey = NULL, *nodes = NULL, *node = NULL;
    PyObject *entry = NULL, *rrset = NULL, *tails = NULL, *after = NULL;
    PyObject *st = NULL, *stzone = NULL, *owners = NULL, *tkey = NULL, *tmpl = NULL;
    PyObject *fixed = NULL, *shape = NULL;
    int cname = 0; /* the owner holds a CNAME, not the type */
    long flags = P->flags, ns = 0, ar = 0;
    /* the lookups first, the rarer conditions after: a missing name (NXDOMAIN, which read
     * then decides) costs one attribute and one dict lookup here */
    if ((t = PySet_Contains(P->excluded, qtype)) != 0) {
        rc = t < 0 ? -1 : 0;
        goto done;
    }
    if ((nodes = PyObject_GetAttr(zone, s_nodes)) == NULL)
        goto done;
    rc = 0;
    if (!PyDict_CheckExact(nodes))
        goto done;
    node = PyDict_GetItemWithError(nodes, key); /* (tuple and bytes keys: no Python runs) */
    if (node == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    Py_INCREF(node);
    if (!PyDict_CheckExact(node))
        goto done;
    entry = PyDict_GetItemWithError(node, qtype);
    if (entry == NULL && !PyErr_Occurred() && P->states != NULL) {
        /* no RRset of the type: a CNAME owner's answer is its template's, if made */
        entry = PyDict_GetItemWithError(node, s_cname_type);
        cname = entry != NULL;
    }
    if (entry == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    Py_INCREF(entry);
    if (!cname && Py_TYPE(entry) != P->type)
        goto done;
    rc = -1;
    if ((dnames = PyObject_GetAttr(zone, s_dnames)) == NULL)
        goto done;
    if ((t = PyObject_IsTrue(dnames)) != 0) {
        rc = t < 0 ? -1 : 0;
        goto done;
    }
    if ((cuts = PyObject_GetAttr(zone, s_cuts)) == NULL ||
        (okey = PyObject_GetAttr(zone, s_okey)) == NULL)
        goto done;
    if (!PyTuple_CheckExact(okey)) {
        rc = 0;
        goto done;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(key);
    if ((t = PyObject_IsTrue(cuts)) < 0)
        goto done;
    if (t) { /* the deepest suffix first, as _shape_of: a cut at or above the name */
        for (Py_ssize_t j = size - PyTuple_GET_SIZE(okey) - 1; j >= 0; j--) {
            PyObject *suffix = PyTuple_GetSlice(key, j, size);
            if (suffix == NULL)
                goto done;
            int in = PySequence_Contains(cuts, suffix);
            Py_DECREF(suffix);
            if (in != 0) { /* a referral: read's */
                rc = in < 0 ? -1 : 0;
                goto done;
            }
        }
    }
    Py_ssize_t an, total = qend;
    unsigned char *out = bufs->plain[*nout];
    if (cname) {
        /* `_shape_of`'s CNAME branch: the zone's state (`_states[okey]`, of this very zone),
         * its `owners[(key, qtype)]`, a fixed Template whose shape is one outcome
         * (flags, ANCOUNT, NSCOUNT, ARCOUNT, sections); anything else is read's (which makes
         * the template, or picks among weighted outcomes) */
        st = PyDict_GetItemWithError(P->states, okey);
        if (st == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        Py_INCREF(st);
        if ((stzone = PyObject_GetAttr(st, s_zone)) == NULL)
            goto done;
        rc = 0;
        if (stzone != zone)
            goto done;
        rc = -1;
        if ((owners = PyObject_GetAttr(st, s_owners)) == NULL)
            goto done;
        rc = 0;
        if (!PyDict_CheckExact(owners))
            goto done;
        rc = -1;
        if ((tkey = PyTuple_Pack(2, key, qtype)) == NULL)
            goto done;
        tmpl = PyDict_GetItemWithError(owners, tkey); /* (tuple, bytes, int: no Python runs) */
        if (tmpl == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        Py_INCREF(tmpl);
        rc = 0;
        if (Py_TYPE(tmpl) != P->template)
            goto done;
        rc = -1;
        if ((fixed = PyObject_GetAttr(tmpl, s_fixed)) == NULL ||
            (shape = PyObject_GetAttr(tmpl, s_shape)) == NULL)
            goto done;
        rc = 0;
        if (fixed != Py_True || !PyTuple_CheckExact(shape) || PyTuple_GET_SIZE(shape) != 5)
            goto done;
        long v[4];
        for (int j = 0; j < 4; j++) {
            PyObject *n = PyTuple_GET_ITEM(shape, j);
            if (!PyLong_CheckExact(n))
                goto done; /* a weighted pick's (cumulative, shapes): read's */
            v[j] = PyLong_AsLong(n);
            if (v[j] < 0 || v[j] > 0xFFFF) {
                PyErr_Clear();
                goto done;
            }
        }
        PyObject *body = PyTuple_GET_ITEM(shape, 4);
        if (!PyBytes_CheckExact(body))
            goto done;
        total += PyBytes_GET_SIZE(body);
        if (total > P->limit)
            goto done; /* truncation is the pipeline's (RFC 2181 §9) */
        /* decided: ours */
        flags = v[0];
        an = v[1];
        ns = v[2];
        ar = v[3];
        write_head(out, data, flags, L->copied, an, ns, ar);
        memcpy(out + 12, data + 12, (size_t)(qend - 12));
        memcpy(out + qend, PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body));
    } else {
        if ((rrset = PyObject_GetAttr(entry, s_rrset)) == NULL ||
            (tails = PyObject_GetAttr(rrset, s_tails)) == NULL)
            goto done;
        rc = 0;
        if (!PyTuple_CheckExact(tails) || PyTuple_GET_SIZE(tails) == 0)
            goto done;
        an = PyTuple_GET_SIZE(tails);
        for (Py_ssize_t j = 0; j < an; j++) {
            PyObject *tail = PyTuple_GET_ITEM(tails, j);
            if (!PyBytes_CheckExact(tail))
                goto done;
            total += 2 + PyBytes_GET_SIZE(tail);
            if (total > P->limit)
                goto done; /* truncation is the pipeline's (RFC 2181 §9) */
        }
        /* decided: ours */
        write_head(out, data, flags, L->copied, an, 0, 0); /* (an: at most limit / 2) */
        memcpy(out + 12, data + 12, (size_t)(qend - 12));
        unsigned char *at = out + qend;
        for (Py_ssize_t j = 0; j < an; j++) {
            PyObject *tail = PyTuple_GET_ITEM(tails, j);
            at[0] = 0xC0;
            at[1] = 0x0C;
            memcpy(at + 2, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
            at += 2 + PyBytes_GET_SIZE(tail);
        }
    }
    struct mmsghdr *m = &bufs->out[*nout];
    if (P->keep != NULL) { /* `udp_read`: keep an owner's own answer on its second sight */
        rc = -1;
        if (P->marks != NULL) {
            t = doorkeeper(P->marks, P->epoch, ekey);
        } else {
            PyObject *seen = PyObject_CallOneArg(P->seen, ekey);
            if (seen == NULL)
                goto done;
            t = PyObject_IsTrue(seen);
            Py_DECREF(seen);
        }
        if (t < 0)
            goto done;
        if (t) {
            after = PyBytes_FromStringAndSize((const char *)out + 2, total - 2);
            if (after == NULL)
                goto done;
            PyObject *kept = PyObject_CallFunctionObjArgs(P->keep, ekey, after, okey, NULL);
            if (kept == NULL)
                goto done;
            Py_DECREF(kept);
        }
    }
    int counted = L->has_census ? census_count(L, data, qend, flags, an) : 0;
    if (counted < 0) {
        rc = -1;
        goto done;
    }
    if (!counted && L->tally != NULL) {
        char status[4] = {(char)out[2], (char)out[3], (char)out[6], (char)out[7]};
        if (tally_status(L, data, len, status, 4) < 0) {
            rc = -1;
            goto done;
        }
    }
    if (after != NULL) { /* the ID, then the bytes the exact table holds: as a hit is sent */
        bufs->iov_out[*nout][0].iov_base = (void *)data;
        bufs->iov_out[*nout][0].iov_len = 2;
        bufs->iov_out[*nout][1].iov_base = PyBytes_AS_STRING(after);
        bufs->iov_out[*nout][1].iov_len = (size_t)PyBytes_GET_SIZE(after);
        m->msg_hdr.msg_iovlen = 2;
        bufs->keep[*nout] = after;
        after = NULL;
    } else {
        bufs->iov_out[*nout][0].iov_base = out;
        bufs->iov_out[*nout][0].iov_len = (size_t)total;
        m->msg_hdr.msg_iovlen = 1;
        bufs->keep[*nout] = NULL;
    }
    m->msg_hdr.msg_name = &bufs->name[i];
    m->msg_hdr.msg_namelen = bufs->in[i].msg_hdr.msg_namelen;
    (*nout)++;
    rc = 1;
done:
    Py_XDECREF(dnames);
    Py_XDECREF(cuts);
    Py_XDECREF(okey);
    Py_XDECREF(nodes);
    Py_XDECREF(node);
    Py_XDECREF(entry);
    Py_XDECREF(rrset);
    Py_XDECREF(tails);
    Py_XDECREF(after);
    Py_XDECREF(st);
    Py_XDECREF(stzone);
    Py_XDECREF(owners);
    Py_XDECREF(tkey);
    Py_XDECREF(tmpl);
    Py_XDECREF(fixed);
    Py_XDECREF(shape);
    return rc;
}

/* One datagram's reply into out[*nout] (or none). Returns 0, or -1 with an exception set
 * that ends the loop: a BaseException that is not an Exception (KeyboardInterrupt,
 * SystemExit), or the TypeError of a reply that is not bytes-like (the Python loop's
 * sendto(reply) raises it out of the loop). An Exception from the fallback is the
 * fallback's to report (it has the Python loop's boundary); one that still escapes it costs
 * only this datagram. `ekey` is set to data[2:] (the exact table's key) when made. */
static int
answer_with_key(int i, const Loop *L, int *nout, PyObject **ekey)
{
    PyObject *exact = L->exact, *counts = L->counts, *random = L->random;
    int absent = 0; /* not in the exact table at all (not merely an entry C does not read) */
    unsigned char *data = bufs->buf[i];
    Py_ssize_t len = (Py_ssize_t)bufs->in[i].msg_len;
    if (len > RECV_SIZE)
        len = RECV_SIZE;
    socklen_t namelen = bufs->in[i].msg_hdr.msg_namelen;
    Py_ssize_t idlen = len < 2 ? len : 2; /* data[:2] */
    PyObject *reply = NULL;
    if (exact != NULL) {
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + idlen, len - idlen);
        if (key == NULL)
            goto failed;
        *ekey = key; /* the caller's to release */
        PyObject *hit = PyDict_GetItemWithError(exact, key); /* borrowed */
        if (hit == NULL && PyErr_Occurred())
            goto failed;
        absent = hit == NULL;
        if (hit != NULL && PyBytes_CheckExact(hit)) {
            Py_INCREF(hit);
            reply = hit;
        } else if (hit != NULL) {
            Py_INCREF(hit); /* random() may run code that changes the table */
            reply = pick(hit, random);
            Py_DECREF(hit);
            if (reply == NULL) {
                /* not the pair the index stores, or random() raised: the fallback answers
                 * it and raises, counts and reports as the Python loop does */
                if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception))
                    return -1;
                PyErr_Clear();
            }
        }
        if (reply != NULL && (counts != NULL || L->has_census)) {
            /* a question C reads: its reply's status is in hand, so the census counts it
             * (no key to hold); else by query, the reply read again when held */
            int counted = 0;
            const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(reply);
            Py_ssize_t starts[128], qend = 0;
            int nlabels = 0, qtype = 0;
            if (L->has_census && PyBytes_GET_SIZE(reply) >= 6 &&
                scan_question(data, len, starts, &nlabels, &qtype, &qend))
                counted = census_count(L, data, qend, (long)(r[0] << 8 | r[1]),
                                       (long)(r[4] << 8 | r[5]));
            if (counted < 0 || (!counted && counts != NULL && count(counts, key) < 0)) {
                Py_CLEAR(reply);
                goto failed;
            }
        }
    }
    if (reply != NULL) { /* data[:2] + hit, without a copy */
        struct mmsghdr *m = &bufs->out[*nout];
        bufs->iov_out[*nout][0].iov_base = data;
        bufs->iov_out[*nout][0].iov_len = (size_t)idlen;
        bufs->iov_out[*nout][1].iov_base = PyBytes_AS_STRING(reply);
        bufs->iov_out[*nout][1].iov_len = (size_t)PyBytes_GET_SIZE(reply);
        m->msg_hdr.msg_iovlen = 2;
        m->msg_hdr.msg_name = &bufs->name[i];
        m->msg_hdr.msg_namelen = namelen;
        bufs->keep[(*nout)++] = reply;
        return 0;
    }
    /* a miss (or an entry the C code does not read): the Python loop's miss branch */
    PyObject *wire = NULL; /* the datagram as bytes, made when Python is called with it */
    PyObject *callee = L->fallback; /* the whole loop body */
    if (absent && L->direct != NULL && len >= 12 && data[10] == 0 && data[11] == 0) {
        /* a query of the question alone: the compiled templates first, as the loop does;
         * with `read`, the question read here (Python's reader only for other shapes) */
        PyObject *key = NULL;
        int qtype = 0;
        Py_ssize_t qend = 0;
        if (L->read != NULL) {
            key = read_question(data, len, &qtype, &qend);
            if (key == NULL && PyErr_Occurred()) {
                Py_XDECREF(wire);
                goto failed;
            }
        }
        if (key != NULL) {
            PyObject *args[5] = {NULL, key, NULL, NULL, NULL};
            args[2] = PyLong_FromLong(qtype);
            args[3] = args[2] == NULL ? NULL : PyLong_FromSsize_t(qend);
            int ok = args[3] != NULL;
            if (ok && L->zones != NULL) {
                PyObject *zone = find_zone(L->zones, key);
                if (zone == NULL) {
                    ok = 0;
                    zone = Py_None;
                }
                Py_INCREF(zone);
                args[4] = zone;
                if (ok && L->has_plain && zone != Py_None && *ekey != NULL) {
                    int done = answer_plain(L, i, data, len, qend, key, args[2], zone, *ekey,
                                            nout);
                    if (done > 0) {
                        Py_DECREF(args[2]);
                        Py_DECREF(args[3]);
                        Py_DECREF(args[4]);
                        Py_DECREF(key);
                        Py_XDECREF(wire);
                        return 0;
                    }
                    if (done < 0) { /* read decides it again, and raises as it would */
                        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                            Py_DECREF(args[2]);
                            Py_DECREF(args[3]);
                            Py_DECREF(args[4]);
                            Py_DECREF(key);
                            Py_XDECREF(wire);
                            return -1;
                        }
                        PyErr_Clear();
                    }
                }
            }
            if (ok && (args[0] = wire = PyBytes_FromStringAndSize((const char *)data, len))
                          == NULL)
                ok = 0;
            bufs->ran = 1;
            reply = !ok ? NULL : PyObject_Vectorcall(L->read, args, L->zones != NULL ? 5 : 4,
                                                     NULL);
            Py_XDECREF(args[2]);
            Py_XDECREF(args[3]);
            Py_XDECREF(args[4]);
            Py_DECREF(key);
            if (reply != NULL && PyTuple_CheckExact(reply)) {
                int rc = splice(L, i, data, len, qend, reply, nout);
                Py_DECREF(reply);
                if (rc == 0) {
                    Py_XDECREF(wire);
                    return 0;
                }
                reply = NULL; /* not an answer C splices: the fallback answers and raises */
                if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
                    Py_XDECREF(wire);
                    return -1;
                }
                PyErr_Clear();
                callee = L->fallback;
                goto full;
            }
        } else {
            bufs->ran = 1;
            wire = PyBytes_FromStringAndSize((const char *)data, len);
            reply = wire == NULL ? NULL : PyObject_CallOneArg(L->direct, wire);
        }
        if (reply == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_XDECREF(wire);
                return -1;
            }
            PyErr_Clear(); /* the fallback answers it again, and reports what it raises */
        } else if (PyBytes_CheckExact(reply)) {
            Py_XDECREF(wire);
            /* read's reply to the question C read (qend past it; 0 for direct's): the census
             * counts it, as splice's; any other, the tally */
            const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(reply);
            int counted = L->has_census && qend > 0 && PyBytes_GET_SIZE(reply) >= 12
                ? census_count(L, data, qend, (long)(r[2] << 8 | r[3]), (long)(r[6] << 8 | r[7]))
                : 0;
            if (counted < 0 || (!counted && L->tally != NULL &&
                                tally_reply(L, data, len, reply) < 0)) {
                Py_DECREF(reply);
                goto failed;
            }
            goto send;
        } else {
            /* None: the rest of the miss branch answers; anything else the whole body
             * answers again, which counts and sends it (or reports it) as the loop does */
            callee = reply == Py_None ? L->rest : L->fallback;
            Py_DECREF(reply);
            reply = NULL;
        }
    }
full:;
    if (wire == NULL && (wire = PyBytes_FromStringAndSize((const char *)data, len)) == NULL)
        goto failed;
    PyObject *addr = address_of(&bufs->name[i]);
    if (addr == NULL) {
        Py_XDECREF(wire);
        goto failed;
    }
    bufs->ran = 1;
    reply = PyObject_CallFunctionObjArgs(callee, wire, addr, NULL);
    Py_XDECREF(wire);
    Py_DECREF(addr);
    if (reply == NULL)
        goto failed;
    if (reply == Py_None) { /* nothing to send */
        Py_DECREF(reply);
        return 0;
    }
    if (!PyBytes_CheckExact(reply)) {
        /* the Python loop passes any reply to sendto: a bytes-like one is sent, anything
         * else raises TypeError there, out of the loop; so here */
        PyObject *b = PyObject_CheckBuffer(reply) ? PyBytes_FromObject(reply) : NULL;
        if (b == NULL && !PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "a bytes-like object is required, not '%.200s'",
                         Py_TYPE(reply)->tp_name);
        Py_DECREF(reply);
        if (b == NULL)
            return -1;
        reply = b;
    }
send:;
    struct mmsghdr *m = &bufs->out[*nout];
    bufs->iov_out[*nout][0].iov_base = PyBytes_AS_STRING(reply);
    bufs->iov_out[*nout][0].iov_len = (size_t)PyBytes_GET_SIZE(reply);
    m->msg_hdr.msg_iovlen = 1;
    m->msg_hdr.msg_name = &bufs->name[i];
    m->msg_hdr.msg_namelen = namelen;
    bufs->keep[(*nout)++] = reply;
    return 0;
failed:
    if (!PyErr_Occurred())
        return 0;
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear(); /* the boundary of one exchange: drop this datagram only */
        return 0;
    }
    return -1;
}

static int
answer_one(int i, const Loop *L, int *nout)
{
    PyObject *ekey = NULL;
    int rc = answer_with_key(i, L, nout, &ekey);
    Py_XDECREF(ekey);
    return rc;
}

PyDoc_STRVAR(drain_doc,
"drain(sock, exact, fallback, counts, random, budget[, direct, rest, tally, unanswered\n"
"[, read, copied[, zones[, plain[, census]]]]]) -> int\n\n"
"Receive, answer and send datagrams on the non-blocking UDP socket `sock` (a socket, whose\n"
"fileno() is read before each receive and send, or a bare fd) until it is empty or\n"
"`budget` is spent; returns the budget spent: datagrams received, plus receives that\n"
"failed, as the Python loop spends it (a receive error other than EAGAIN costs one and\n"
"the loop goes on, as authd.dns.server.serve_udp's `except OSError: continue`; a closed\n"
"socket fails each receive with EBADF, so its budget is spent and the caller's next wait\n"
"on it raises). Less than `budget` means the socket was empty, so wait for it to be\n"
"readable.\n\n"
"exact: the exact table (query after the ID -> reply after the ID, or a weighted\n"
"(cumulative, replies) pair picked with random()); None sends every datagram to fallback.\n"
"fallback(data, addr) -> bytes | None answers any other datagram; it must catch its own\n"
"exceptions (an Exception that escapes drops the datagram; any other BaseException is\n"
"raised after the batch's replies are sent, and so is the TypeError of a reply that is\n"
"not bytes-like, as the Python loop's sendto raises it; a bytes-like one is sent). counts:\n"
"None, or the dict that counts exact hits by query bytes after the ID. When the socket is\n"
"closed by a fallback, the rest of the batch is not answered (the Python loop would not\n"
"have received it).\n\n"
"direct, rest, tally, unanswered (optional, together): a miss that carries the question\n"
"alone (ARCOUNT 0) goes to direct(data) first (the compiled templates); a reply is\n"
"counted in tally by query and status (unanswered for an empty one) and sent, None hands\n"
"the datagram to rest(data, addr), the rest of the fallback's miss branch.\n\n"
"read, copied (optional, together; read None or a callable): for such a miss whose\n"
"question C reads (the shape authd.dns.wire.read_query reads, without EDNS),\n"
"read(data, key, qtype, qend) is called instead of direct(data), with the key of lowered\n"
"labels and b\"\" (read_question's). It returns what direct does, or the answer\n"
"(flags, ANCOUNT, NSCOUNT, ARCOUNT, sections, okey) that C splices as\n"
"CompiledAnswers._spliced does: the ID, flags | (the query's flags & copied), the counts,\n"
"the question, the sections; counted in tally as direct's replies are.\n\n"
"zones (optional, a dict or None): with it, read also gets the zone: zones[suffix] for the\n"
"name's longest suffix in it (None when none is), as read(data, key, qtype, qend, zone).\n\n"
"plain (optional, with zones; None or (Plain, excluded, seen, keep, flags, limit)): an\n"
"owner's own plain RRset is answered in C, as CompiledAnswers._shape_of's first branch and\n"
"udp_read answer it (QTYPE not in `excluded`, no DNAME in the zone, no cut at or above the\n"
"name, zone.nodes[key][qtype] of type Plain with rrset.tails, the response at most\n"
"`limit` octets): flags | (the query's flags & copied), ANCOUNT len(tails), the question,\n"
"each tail after a pointer to the question's name; when seen(query after the ID) is true\n"
"(seen: a callable, or CompiledAnswers.doorkeeper's (marks, epoch), run in C alike)\n"
"and keep is not None, keep(query after the ID, reply after the ID, zone.okey) is called\n"
"first. Counted in tally as read's answers are. Anything else goes to read.\n\n"
"census (optional; None or (types, counts, pairs), authd.metrics.Census): a reply C sends\n"
"itself to a question it reads (an exact hit, a plain RRset, read's answers) is counted\n"
"there instead of in counts or tally: counts[slot * 16 + rcode] += 1 (an array('Q') of\n"
"256; slot: the QTYPE's index in types, at most 16), and for NOERROR with answer records\n"
"the (name, type) pair (the name's wire octets lowered, then QTYPE) added to the set\n"
"pairs. A QTYPE without a slot, NOERROR without records, FORMERR and rcode 15 are counted\n"
"as before.");

/* The `census` argument, (types, counts, pairs): at most CENSUS_TYPES QTYPEs, a writable
 * buffer of CENSUS_TYPES * CENSUS_RCODES unsigned 64-bit counters (array('Q')), a set. Its
 * buffer is held until PyBuffer_Release (an array cannot be resized meanwhile). 0, or -1
 * with an exception set (nothing held). */
static int
census_of(PyObject *arg, Census *C)
{
    PyObject *types, *counts, *pairs;
    if (!PyTuple_CheckExact(arg) || PyTuple_GET_SIZE(arg) != 3)
        goto bad;
    types = PyTuple_GET_ITEM(arg, 0);
    counts = PyTuple_GET_ITEM(arg, 1);
    pairs = PyTuple_GET_ITEM(arg, 2);
    if (!PyTuple_CheckExact(types) || PyTuple_GET_SIZE(types) > CENSUS_TYPES ||
        !PySet_CheckExact(pairs))
        goto bad;
    C->ntypes = (int)PyTuple_GET_SIZE(types);
    for (int j = 0; j < C->ntypes; j++) {
        long t = PyLong_AsLong(PyTuple_GET_ITEM(types, j));
        if (t == -1 && PyErr_Occurred())
            return -1;
        if (t < 0 || t > 0xFFFF)
            goto bad;
        C->types[j] = (int)t;
    }
    if (PyObject_GetBuffer(counts, &C->view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_ND) < 0)
        return -1;
    if (C->view.len != (Py_ssize_t)(CENSUS_TYPES * CENSUS_RCODES * sizeof(unsigned long long)) ||
        C->view.itemsize != 8 || C->view.format == NULL || strcmp(C->view.format, "Q") != 0 ||
        ((uintptr_t)C->view.buf % sizeof(unsigned long long)) != 0) {
        PyBuffer_Release(&C->view);
        goto bad;
    }
    C->counts = (unsigned long long *)C->view.buf;
    C->pairs = pairs;
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "census must be None or (a tuple of at most %d QTYPEs, "
                 "array('Q') of %d counters, a set)", CENSUS_TYPES, CENSUS_TYPES * CENSUS_RCODES);
    return -1;
}

/* The socket's fd now: L->sock's fileno() (-1 once closed), or the bare fd. -2 with an
 * exception set. */
static int
current_fd(PyObject *sock, int fd)
{
    if (sock == NULL)
        return fd;
    PyObject *got = PyObject_CallMethodNoArgs(sock, s_fileno);
    if (got == NULL)
        return -2;
    long n = PyLong_AsLong(got);
    Py_DECREF(got);
    if (n == -1 && PyErr_Occurred())
        return -2;
    return n < 0 || n > INT_MAX ? -1 : (int)n;
}

static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 && nargs != 10 && nargs != 12 && nargs != 13 && nargs != 14 && nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "drain(sock, exact, fallback, counts, random, budget"
                        "[, direct, rest, tally, unanswered[, read, copied[, zones[, plain"
                        "[, census]]]]]) takes 6, 10, 12, 13, 14 or 15 arguments");
        return NULL;
    }
    int fd = -1;
    PyObject *sock = NULL;
    if (PyLong_Check(args[0])) {
        long lfd = PyLong_AsLong(args[0]);
        if (lfd == -1 && PyErr_Occurred())
            return NULL;
        if (lfd < 0 || lfd > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "fd out of range");
            return NULL;
        }
        fd = (int)lfd;
    } else {
        sock = args[0]; /* a socket: its fd read before each receive and send */
        if (current_fd(sock, 0) == -2)
            return NULL;
    }
    Loop L = {args[1] == Py_None ? NULL : args[1], args[2], args[3] == Py_None ? NULL : args[3],
              args[4], NULL, NULL, NULL, NULL, NULL, 0, NULL, sock, 0,
              {NULL, NULL, NULL, NULL, 0, NULL, 0, 0, NULL, NULL}, 0, {0, {0}, NULL, NULL, {0}}};
    PyObject *exact = L.exact, *fallback = L.fallback, *counts = L.counts, *random = L.random;
    Py_ssize_t budget = PyLong_AsSsize_t(args[5]);
    if (budget == -1 && PyErr_Occurred())
        return NULL;
    PyObject *plain = NULL;
    if (nargs >= 10 && args[6] != Py_None) {
        L.direct = args[6];
        L.rest = args[7];
        L.tally = args[8] == Py_None ? NULL : args[8];
        L.unanswered = args[9];
        L.read = nargs >= 12 && args[10] != Py_None ? args[10] : NULL;
        if (L.read != NULL) {
            L.copied = PyLong_AsLong(args[11]);
            if (L.copied == -1 && PyErr_Occurred())
                return NULL;
            L.zones = nargs >= 13 && args[12] != Py_None ? args[12] : NULL;
            if (L.zones != NULL && !PyDict_CheckExact(L.zones)) {
                PyErr_SetString(PyExc_TypeError, "zones must be a dict or None");
                return NULL;
            }
            plain = nargs >= 14 && args[13] != Py_None && L.zones != NULL ? args[13] : NULL;
        }
        if (!PyCallable_Check(L.direct) || !PyCallable_Check(L.rest) ||
            (L.read != NULL && !PyCallable_Check(L.read)) ||
            (L.tally != NULL && !PyDict_Check(L.tally)) || !PyBytes_CheckExact(L.unanswered)) {
            PyErr_SetString(PyExc_TypeError, "direct, rest and read must be callable, tally "
                            "a dict or None, unanswered bytes");
            return NULL;
        }
    }
    if (plain != NULL) {
        PyObject *type, *excluded, *seen, *keep, *flags, *limit, *states = NULL, *tmpl = NULL;
        if (!PyTuple_CheckExact(plain) ||
            !PyArg_UnpackTuple(plain, "plain", 6, 8, &type, &excluded, &seen, &keep, &flags,
                               &limit, &states, &tmpl))
            goto bad_plain;
        if (states != NULL && states != Py_None) { /* with the templates' type */
            if (!PyDict_CheckExact(states) || tmpl == NULL || !PyType_Check(tmpl))
                goto bad_plain;
            L.plain.states = states;
            L.plain.template = (PyTypeObject *)tmpl;
        }
        if (PyTuple_CheckExact(seen) && PyTuple_GET_SIZE(seen) == 2 &&
            PyByteArray_CheckExact(PyTuple_GET_ITEM(seen, 0)) &&
            PyLong_CheckExact(PyTuple_GET_ITEM(seen, 1))) { /* (marks, epoch): run here */
            Py_ssize_t size = PyByteArray_GET_SIZE(PyTuple_GET_ITEM(seen, 0));
            L.plain.marks = PyTuple_GET_ITEM(seen, 0);
            L.plain.epoch = PyLong_AsLong(PyTuple_GET_ITEM(seen, 1));
            if ((L.plain.epoch == -1 && PyErr_Occurred()) || L.plain.epoch < 1 ||
                L.plain.epoch > 0xFFFF || size < 3 || ((size - 2) & (size - 3)) != 0) {
                PyErr_Clear();
                goto bad_plain;
            }
        } else if (!PyCallable_Check(seen))
            goto bad_plain;
        if (!PyType_Check(type) || !PyAnySet_Check(excluded) ||
            (keep != Py_None && !PyCallable_Check(keep)))
            goto bad_plain;
        L.plain.flags = PyLong_AsLong(flags);
        L.plain.limit = PyLong_AsSsize_t(limit);
        if (PyErr_Occurred())
            return NULL;
        if (L.plain.flags < 0 || L.plain.flags > 0xFFFF)
            goto bad_plain;
        L.plain.type = (PyTypeObject *)type;
        L.plain.excluded = excluded;
        L.plain.seen = L.plain.marks != NULL ? NULL : seen;
        L.plain.keep = keep == Py_None ? NULL : keep;
        if (L.plain.limit > PLAIN_MAX)
            L.plain.limit = PLAIN_MAX; /* longer ones stay read's */
        L.has_plain = 1;
    }
    if ((exact != NULL && !PyDict_Check(exact)) || (counts != NULL && !PyDict_Check(counts))) {
        PyErr_SetString(PyExc_TypeError, "exact and counts must be dicts or None");
        return NULL;
    }
    if (!PyCallable_Check(fallback) || !PyCallable_Check(random)) {
        PyErr_SetString(PyExc_TypeError, "fallback and random must be callable");
        return NULL;
    }
    if (thread_buffers() == NULL)
        return PyErr_NoMemory();
    if (bufs->busy) {
        PyErr_SetString(PyExc_RuntimeError, "drain is not reentrant");
        return NULL;
    }
    if (nargs == 15 && args[14] != Py_None && census_of(args[14], &L.census) < 0)
        return NULL;
    L.has_census = L.census.counts != NULL;
    bufs->busy = 1;
    /* the fallback may drop the last other references to these */
    PyObject *held[] = {fallback, exact, counts, random, L.direct, L.rest, L.tally,
                        L.unanswered, L.read, L.zones, sock, (PyObject *)L.plain.type,
                        L.plain.excluded, L.plain.seen, L.plain.keep, L.census.pairs,
                        L.plain.marks, L.plain.states, (PyObject *)L.plain.template};
    const int nheld = (int)(sizeof held / sizeof held[0]);
    for (int j = 0; j < nheld; j++)
        Py_XINCREF(held[j]);
    Py_ssize_t total = 0;
    int failed = 0;
    while (total < budget && !failed) {
        unsigned int want = budget - total < BATCH ? (unsigned int)(budget - total) : BATCH;
        for (unsigned int i = 0; i < want; i++) {
            bufs->in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
            bufs->in[i].msg_hdr.msg_controllen = 0;
            bufs->in[i].msg_hdr.msg_flags = 0;
        }
        int now = current_fd(sock, fd);
        if (now == -2) {
            failed = 1;
            break;
        }
        int n;
        if (now < 0) { /* closed: each receive fails with EBADF, as sock.recvfrom does */
            n = -1;
            errno = EBADF;
        } else
            n = recvmmsg(now, bufs->in, want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR) { /* PEP 475: run the signal handlers, then go on */
                if (PyErr_CheckSignals() < 0)
                    failed = 1;
                continue;
            }
            /* as the Python loop's `except OSError: continue` (ECONNREFUSED from an earlier
             * send's ICMP, EBADF on a closed socket, ...): one of the budget, and go on */
            total += 1;
            continue;
        }
        if (n == 0)
            break;
        int nout = 0;
        for (int i = 0; i < n; i++) {
            bufs->ran = 0;
            if (answer_one(i, &L, &nout) < 0) {
                failed = 1; /* what is left of this batch is dropped */
                break;
            }
            if (bufs->ran && sock != NULL && i + 1 < n) {
                int open = current_fd(sock, fd);
                if (open == -2) {
                    failed = 1;
                    break;
                }
                if (open < 0)
                    break; /* closed: the Python loop would not have received the rest */
            }
        }
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb); /* keep the loop's exception while sending */
        now = current_fd(sock, fd);
        PyErr_Clear();
        send_all(now, nout);
        PyErr_Restore(type, value, tb);
        total += n;
    }
    bufs->busy = 0;
    if (L.has_census)
        PyBuffer_Release(&L.census.view);
    for (int j = 0; j < nheld; j++)
        Py_XDECREF(held[j]);
    if (failed)
        return NULL;
    return PyLong_FromSsize_t(total);
bad_plain:
    PyErr_SetString(PyExc_TypeError, "plain must be None or (type, set, callable or (marks, "
                    "epoch), callable or None, flags, limit)");
    return NULL;
}

PyDoc_STRVAR(read_question_doc,
"read_question(data) -> (key, qtype, qend) | None\n\n"
"The question as drain reads it for `read`: the key of lowered labels and b\"\", QTYPE and\n"
"the offset past the question, or None for a shape it leaves to Python's reader\n"
"(authd.dns.wire.read_query, whose rules it repeats; tests check the two agree).");

static PyObject *
read_question_py(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "read_question takes bytes");
        return NULL;
    }
    int qtype = 0;
    Py_ssize_t qend = 0;
    PyObject *key = read_question((const unsigned char *)PyBytes_AS_STRING(arg),
                                  PyBytes_GET_SIZE(arg), &qtype, &qend);
    if (key == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Nin)", key, qtype, qend);
}

static PyMethodDef methods[] = {
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL, drain_doc},
    {"read_question", read_question_py, METH_O, read_question_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "authd.dns._fastudp",
    "The UDP loop batched with recvmmsg/sendmmsg (issue 12); optional, see authd.dns.server.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastudp(void)
{
    if (!bufs_key_made) {
        if (pthread_key_create(&bufs_key, free) != 0)
            return PyErr_NoMemory();
        bufs_key_made = 1;
    }
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    static const char *names[] = {"dnames", "cuts", "nodes", "okey", "rrset", "tails",
                                  "fileno", "zone", "owners", "fixed", "shape"};
    PyObject **slots[] = {&s_dnames, &s_cuts, &s_nodes, &s_okey, &s_rrset, &s_tails,
                          &s_fileno, &s_zone, &s_owners, &s_fixed, &s_shape};
    if (s_cname_type == NULL && (s_cname_type = PyLong_FromLong(5)) == NULL)
        return NULL;
    for (int j = 0; j < 11; j++)
        if (*slots[j] == NULL && (*slots[j] = PyUnicode_InternFromString(names[j])) == NULL)
            return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "BATCH", BATCH) < 0 ||
        PyModule_AddIntConstant(m, "RECV_SIZE", RECV_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
