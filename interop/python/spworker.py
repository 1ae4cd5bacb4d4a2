"""Simple Pirate worker peer (the role of the Guide's spworker), written for interop tests.

A REQ socket with a random identity "%04X-%04X" (or --identity) connects to --connect, sends
READY (one frame, the byte 0x01) once, then for every request [C][""][request...] waits --work-ms
and sends the whole message back unchanged. It never says READY again. With
--crash-probability / --overload-probability it simulates, after --faults-after requests, a crash
(the process exits 1 without replying) or overload (an extra --overload-ms), as the reference
does (there: after 3 requests, p=1/5 each, 1 s work, 3 s overload).
"""

import zmq

from _common import (add_fault_options, fault_decision, make_logger, parser, random_identity, run,
                     show_frames, sleep_ms)

log = make_logger("spworker")
READY = b"\x01"


def main(ctx):
    p = parser("spworker", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5556", help="queue backend endpoint")
    p.add_argument("--identity", default=None, help='routing identity, random "%%04X-%%04X" when not given')
    p.add_argument("--work-ms", type=float, default=1000.0, metavar="MS",
                   help="time every request takes before the reply")
    add_fault_options(p, overload_ms=3000.0)
    args = p.parse_args()

    identity = args.identity or random_identity()
    worker = ctx.socket(zmq.REQ)
    worker.linger = 0
    worker.setsockopt(zmq.IDENTITY, identity.encode("ascii"))
    worker.connect(args.connect)
    worker.send(READY)
    log("ready: %s connected to %s, READY sent" % (identity, args.connect))

    cycles = 0
    while True:
        message = worker.recv_multipart()
        cycles += 1
        decision = fault_decision(args, cycles)
        if decision == "crash":
            log("simulating a crash (request %d)" % cycles)
            return 1
        if decision == "overload":
            log("simulating CPU overload (request %d)" % cycles)
            sleep_ms(args.overload_ms)
        log("normal reply (%s)" % show_frames(message))
        sleep_ms(args.work_ms)
        worker.send_multipart(message)


if __name__ == "__main__":
    run(main, log)
