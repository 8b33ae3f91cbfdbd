#!/usr/bin/python3
"""Verifies every DKIM-Signature of a message with python3-dkim (dkimpy), the verifier behind
Debian's dkimverify, as an independent check of Rookery's signatures.

Usage: verify-dkim.py RECORDS_JSON < message
  RECORDS_JSON maps DNS names ("sel._domainkey.example.com", no trailing dot) to TXT records.
Prints JSON: {"signatures": N, "results": [{"index", "domain", "selector", "valid", "error", "log"}]}
"""
import json
import logging
import sys

import dkim


class Collect(logging.Handler):
    """Keeps what dkimpy logs while verifying one signature: it says why a signature failed."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def main():
    records = json.loads(sys.argv[1])
    message = sys.stdin.buffer.read()

    def dnsfunc(name, timeout=5):
        record = records.get(name.decode('ascii').rstrip('.').lower())
        return record.encode('ascii') if record is not None else None

    count = len([1 for name, _ in dkim.DKIM(message).headers if name.lower() == b'dkim-signature'])
    results = []
    for index in range(count):
        collect = Collect()
        logger = logging.getLogger('verify-dkim.%d' % index)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(collect)
        logger.propagate = False
        verifier = dkim.DKIM(message, logger=logger)
        error = None
        try:
            valid = bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException as e:
            valid = False
            error = '%s: %s' % (type(e).__name__, e)
        results.append({
            'index': index,
            'domain': verifier.domain.decode('ascii') if verifier.domain else None,
            'selector': verifier.selector.decode('ascii') if verifier.selector else None,
            'valid': valid,
            'error': error,
            # Debug lines hold hashed data; keep the errors and the verdicts.
            'log': [line for line in collect.lines if not line.startswith(('sig:', 'body hashed', 'bh:', 'signed for'))],
        })
    json.dump({'signatures': count, 'results': results}, sys.stdout)


if __name__ == '__main__':
    main()
