"""Cells: N independent copies of DNS management, the customer cell map, the blast-radius experiment and its check."""
