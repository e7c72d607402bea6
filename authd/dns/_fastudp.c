/* authd.dns._fastudp: the UDP shell's receive/answer/send loop, batched (issue 12).
 *
 * Part of the trio shell, not of the pure core: it only moves datagrams. One call of
 * `drain` receives up to BATCH datagrams with one recvmmsg(2), answers each from the
 * serving index's exact table (`ServingIndex.exact_udp`: query bytes after the ID -> reply
 * bytes after the ID, or a weighted `(cumulative, replies)` pair picked with the index's
 * random source), hands every other datagram to a Python callable (the Python loop's miss
 * branch, with its own exception boundary; a question alone it reads itself, as
 * `authd.dns.wire.read_query` does, and splices the answer `CompiledAnswers.udp_read` decides
 * for it), and sends the batch's replies with one
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
/* as the Python loop's recvfrom(4096): a longer datagram is cut to its first 4096 octets */
#define RECV_SIZE 4096

typedef struct {
    unsigned char buf[BATCH][RECV_SIZE];
    struct sockaddr_storage name[BATCH];
    struct iovec iov_in[BATCH];
    struct mmsghdr in[BATCH];
    struct iovec iov_out[BATCH][3];
    unsigned char head[BATCH][12]; /* a header C writes for `read`'s answers */
    struct mmsghdr out[BATCH];
    PyObject *keep[BATCH]; /* each reply stays alive until sendmmsg has sent it */
    int busy;              /* `drain` is not reentrant: a fallback must not call it */
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
 * the question. Returns the name's key, the lowered labels (ASCII A-Z only, as bytes.lower)
 * and the root's b"", as a new tuple, with QTYPE and qend (the offset past the question);
 * NULL with no exception for any other shape (Python's reader then decides), NULL with an
 * exception when memory runs out. */
static PyObject *
read_question(const unsigned char *data, Py_ssize_t n, int *qtype, Py_ssize_t *qend)
{
    static const unsigned char qd1[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    if (n < 17 || (data[2] & 0xF8) || memcmp(data + 4, qd1, 8) != 0)
        return NULL;
    Py_ssize_t starts[128];
    int nlabels = 0;
    Py_ssize_t i = 12;
    for (;;) {
        unsigned int length = data[i];
        if (length == 0)
            break;
        if (length > 63)
            return NULL;
        if (nlabels == 128)  /* more labels than 255 octets can hold */
            return NULL;
        starts[nlabels++] = i;
        i += (Py_ssize_t)length + 1;
        if (i >= n)
            return NULL;
    }
    if (i > 266) /* a name of at most 255 octets, the root's included */
        return NULL;
    Py_ssize_t end = i + 5;
    if (end != n || data[i + 3] != 0 || data[i + 4] != 1) /* class IN; no records after */
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
    *qtype = data[i + 1] << 8 | data[i + 2];
    *qend = end;
    return key;
}

/* Send out[0:n]; a datagram the kernel refuses (full buffer, unreachable client) is dropped,
 * as the Python loop drops it on OSError from sendto. */
static void
send_all(int fd, int n)
{
    int off = 0;
    while (off < n) {
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

/* What one `drain` call answers with (borrowed references, held by the call). */
typedef struct {
    PyObject *exact, *fallback, *counts, *random; /* exact, counts: NULL for None */
    PyObject *direct, *rest, *tally, *unanswered; /* direct, tally: NULL for None */
    PyObject *read;                               /* NULL for None */
    long copied; /* the header bits a response copies from the query (with `read`) */
    PyObject *zones; /* NULL for None: the zone table `read` is given a zone from */
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
    long flags = v[0] | ((long)(data[2] << 8 | data[3]) & L->copied);
    h[0] = data[0];
    h[1] = data[1];
    h[2] = (unsigned char)(flags >> 8);
    h[3] = (unsigned char)flags;
    h[4] = 0;
    h[5] = 1;
    for (int j = 1; j < 4; j++) {
        h[4 + 2 * j] = (unsigned char)(v[j] >> 8);
        h[5 + 2 * j] = (unsigned char)v[j];
    }
    if (L->tally != NULL) {
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

/* One datagram's reply into out[*nout] (or none). Returns 0, or -1 with a BaseException
 * that is not an Exception set (KeyboardInterrupt, SystemExit): the loop then stops. An
 * Exception from the fallback is the fallback's to report (it has the Python loop's
 * boundary); one that still escapes it costs only this datagram. */
static int
answer_one(int i, const Loop *L, int *nout)
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
        PyObject *hit = PyDict_GetItemWithError(exact, key); /* borrowed */
        if (hit == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            goto failed;
        }
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
                if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
                    Py_DECREF(key);
                    return -1;
                }
                PyErr_Clear();
            }
        }
        if (reply != NULL && counts != NULL && count(counts, key) < 0) {
            Py_CLEAR(reply);
            Py_DECREF(key);
            goto failed;
        }
        Py_DECREF(key);
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
    PyObject *wire = PyBytes_FromStringAndSize((const char *)data, len);
    if (wire == NULL)
        goto failed;
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
                Py_DECREF(wire);
                goto failed;
            }
        }
        if (key != NULL) {
            PyObject *args[5] = {wire, key, NULL, NULL, NULL};
            args[2] = PyLong_FromLong(qtype);
            args[3] = args[2] == NULL ? NULL : PyLong_FromSsize_t(qend);
            int ok = args[3] != NULL;
            if (ok && L->zones != NULL) {
                /* the deepest zone holding the name: its suffixes, longest first, as
                 * CompiledAnswers._shape_of searches table.zones */
                Py_ssize_t size = PyTuple_GET_SIZE(key);
                PyObject *zone = Py_None;
                for (Py_ssize_t j = 0; j < size && ok; j++) {
                    PyObject *suffix = PyTuple_GetSlice(key, j, size);
                    if (suffix == NULL) {
                        ok = 0;
                        break;
                    }
                    PyObject *z = PyDict_GetItemWithError(L->zones, suffix);
                    Py_DECREF(suffix);
                    if (z != NULL) {
                        zone = z;
                        break;
                    }
                    if (PyErr_Occurred())
                        ok = 0;
                }
                Py_INCREF(zone);
                args[4] = zone;
            }
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
                    Py_DECREF(wire);
                    return 0;
                }
                reply = NULL; /* not an answer C splices: the fallback answers and raises */
                if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
                    Py_DECREF(wire);
                    return -1;
                }
                PyErr_Clear();
                callee = L->fallback;
                goto full;
            }
        } else {
            reply = PyObject_CallOneArg(L->direct, wire);
        }
        if (reply == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_DECREF(wire);
                return -1;
            }
            PyErr_Clear(); /* the fallback answers it again, and reports what it raises */
        } else if (PyBytes_CheckExact(reply)) {
            Py_DECREF(wire);
            if (L->tally != NULL && tally_reply(L, data, len, reply) < 0) {
                Py_DECREF(reply);
                goto failed;
            }
            goto send;
        } else {
            Py_DECREF(reply); /* None: the rest of the miss branch answers */
            reply = NULL;
            callee = L->rest;
        }
    }
full:;
    PyObject *addr = address_of(&bufs->name[i]);
    if (addr == NULL) {
        Py_DECREF(wire);
        goto failed;
    }
    reply = PyObject_CallFunctionObjArgs(callee, wire, addr, NULL);
    Py_DECREF(wire);
    Py_DECREF(addr);
    if (reply == NULL)
        goto failed;
    if (!PyBytes_CheckExact(reply)) { /* None: nothing to send */
        Py_DECREF(reply);
        return 0;
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

PyDoc_STRVAR(drain_doc,
"drain(fd, exact, fallback, counts, random, budget) -> int\n\n"
"Receive, answer and send datagrams on the non-blocking UDP socket fd until it is empty\n"
"or `budget` is spent; returns the budget spent: datagrams received, plus receives that\n"
"failed (ECONNREFUSED), as the Python loop spends it. Less than `budget` means the socket\n"
"was empty, so wait for it to be readable.\n\n"
"exact: the exact table (query after the ID -> reply after the ID, or a weighted\n"
"(cumulative, replies) pair picked with random()); None sends every datagram to fallback.\n"
"fallback(data, addr) -> bytes | None answers any other datagram; it must catch its own\n"
"exceptions (an Exception that escapes drops the datagram; any other BaseException is\n"
"raised after the batch's replies are sent). counts: None, or the dict that counts exact\n"
"hits by query bytes after the ID.\n\n"
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
"name's longest suffix in it (None when none is), as read(data, key, qtype, qend, zone).");

static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 && nargs != 10 && nargs != 12 && nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "drain(fd, exact, fallback, counts, random, budget"
                        "[, direct, rest, tally, unanswered[, read, copied[, zones]]]) takes "
                        "6, 10, 12 or 13 arguments");
        return NULL;
    }
    long lfd = PyLong_AsLong(args[0]);
    if (lfd == -1 && PyErr_Occurred())
        return NULL;
    if (lfd < 0 || lfd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd out of range");
        return NULL;
    }
    int fd = (int)lfd;
    Loop L = {args[1] == Py_None ? NULL : args[1], args[2], args[3] == Py_None ? NULL : args[3],
              args[4], NULL, NULL, NULL, NULL, NULL, 0, NULL};
    PyObject *exact = L.exact, *fallback = L.fallback, *counts = L.counts, *random = L.random;
    Py_ssize_t budget = PyLong_AsSsize_t(args[5]);
    if (budget == -1 && PyErr_Occurred())
        return NULL;
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
            L.zones = nargs == 13 && args[12] != Py_None ? args[12] : NULL;
            if (L.zones != NULL && !PyDict_CheckExact(L.zones)) {
                PyErr_SetString(PyExc_TypeError, "zones must be a dict or None");
                return NULL;
            }
        }
        if (!PyCallable_Check(L.direct) || !PyCallable_Check(L.rest) ||
            (L.read != NULL && !PyCallable_Check(L.read)) ||
            (L.tally != NULL && !PyDict_Check(L.tally)) || !PyBytes_CheckExact(L.unanswered)) {
            PyErr_SetString(PyExc_TypeError, "direct, rest and read must be callable, tally "
                            "a dict or None, unanswered bytes");
            return NULL;
        }
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
    bufs->busy = 1;
    Py_INCREF(fallback); /* the fallback may drop the last other references to these */
    Py_XINCREF(exact);
    Py_XINCREF(counts);
    Py_INCREF(random);
    Py_XINCREF(L.direct);
    Py_XINCREF(L.rest);
    Py_XINCREF(L.tally);
    Py_XINCREF(L.unanswered);
    Py_XINCREF(L.read);
    Py_XINCREF(L.zones);
    Py_ssize_t total = 0;
    int failed = 0;
    while (total < budget && !failed) {
        unsigned int want = budget - total < BATCH ? (unsigned int)(budget - total) : BATCH;
        for (unsigned int i = 0; i < want; i++) {
            bufs->in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
            bufs->in[i].msg_hdr.msg_controllen = 0;
            bufs->in[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(fd, bufs->in, want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR) { /* PEP 475: run the signal handlers, then go on */
                if (PyErr_CheckSignals() < 0)
                    failed = 1;
                continue;
            }
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL || errno == EFAULT) {
                PyErr_SetFromErrno(PyExc_OSError); /* not a socket we can serve */
                failed = 1;
                break;
            }
            total += 1; /* e.g. ECONNREFUSED from an earlier send's ICMP: as the loop, go on */
            continue;
        }
        if (n == 0)
            break;
        int nout = 0;
        for (int i = 0; i < n; i++) {
            if (answer_one(i, &L, &nout) < 0) {
                failed = 1; /* what is left of this batch is dropped */
                break;
            }
        }
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb); /* sendmmsg runs no Python, but keep it clean */
        send_all(fd, nout);
        PyErr_Restore(type, value, tb);
        total += n;
    }
    bufs->busy = 0;
    Py_DECREF(fallback);
    Py_XDECREF(exact);
    Py_XDECREF(counts);
    Py_DECREF(random);
    Py_XDECREF(L.direct);
    Py_XDECREF(L.rest);
    Py_XDECREF(L.tally);
    Py_XDECREF(L.unanswered);
    Py_XDECREF(L.read);
    Py_XDECREF(L.zones);
    if (failed)
        return NULL;
    return PyLong_FromSsize_t(total);
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
