#!/usr/bin/env python3
"""The reference figure for outpost's forwarder bench: confluent-kafka's (librdkafka's) own
transactional producer, sending --records records of --record-bytes bytes to --topic, in
transactions of --txn-records records, each committed before the next begins.

Prints one parseable line (seconds: from the first begin_transaction to the last commit;
InitProducerId is before it and reported apart as init_s):

  txn_bench records=1000000 bytes=100 txn_records=10000 seconds=4.321 records_per_s=231428 mb_per_s=23.14 init_s=0.012 warmup_records=100000

--warmup-records records are sent first (in committed transactions of --txn-records, not
timed): a fresh broker's JIT makes the first million slower by a fifth or more on 2 cores.

mb_per_s counts value bytes only (keys are null), in 10^6 bytes per second. Exits non-zero
on any delivery error or failed commit.
"""

import argparse
import os
import sys
import time

from confluent_kafka import KafkaException, Producer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-bytes", type=int, default=100)
    ap.add_argument("--txn-records", type=int, default=10_000)
    ap.add_argument("--warmup-records", type=int, default=0)
    ap.add_argument("--transactional-id", default="outpost-txn-bench-%d" % os.getpid())
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for each init/commit")
    a = ap.parse_args()

    p = Producer(
        {
            "bootstrap.servers": a.bootstrap,
            "transactional.id": a.transactional_id,
            "enable.idempotence": True,
            "linger.ms": a.linger_ms,
            "queue.buffering.max.messages": max(100_000, a.txn_records),
            "queue.buffering.max.kbytes": 1_048_576,
            "compression.type": "none",
        }
    )
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    value = bytes((i * 7 + 13) % 256 for i in range(a.record_bytes))

    def send(total):
        sent = 0
        while sent < total and not errors:
            n = min(a.txn_records, total - sent)
            p.begin_transaction()
            for _ in range(n):
                while True:
                    try:
                        p.produce(a.topic, value, on_delivery=on_delivery)
                        break
                    except BufferError:
                        p.poll(0.001)
                p.poll(0)
            p.commit_transaction(a.timeout)
            sent += n
        return sent

    try:
        t0 = time.monotonic()
        p.init_transactions(a.timeout)
        init_s = time.monotonic() - t0
        send(a.warmup_records)
        t1 = time.monotonic()
        sent = send(a.records)
        t2 = time.monotonic()
    except KafkaException as e:
        sys.stderr.write("txn_bench: %s\n" % e)
        sys.exit(1)
    if errors:
        sys.stderr.write("txn_bench: %d delivery errors, first: %s\n" % (len(errors), errors[0]))
        sys.exit(1)
    secs = t2 - t1
    print(
        "txn_bench records=%d bytes=%d txn_records=%d seconds=%.3f records_per_s=%.0f mb_per_s=%.2f init_s=%.3f warmup_records=%d"
        % (
            sent,
            a.record_bytes,
            a.txn_records,
            secs,
            sent / secs,
            sent * a.record_bytes / secs / 1e6,
            init_s,
            a.warmup_records,
        )
    )


if __name__ == "__main__":
    main()
