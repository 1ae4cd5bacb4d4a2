"""Lazy Pirate server peer (the role of the Guide's lpserver), written for interop tests.

A REP socket bound to --bind. Each request is echoed back unchanged (every frame) after
--work-ms. With --crash-probability / --overload-probability it simulates, after --faults-after
requests, a crash (the process exits 1 without replying) or CPU overload (an extra --overload-ms),
as the reference does (there: after 3 requests, p=1/3 each, 1 s work, 2 s overload).
"""

import zmq

from _common import add_fault_options, fault_decision, make_logger, parser, run, show_frames, sleep_ms

log = make_logger("lpserver")


def main(ctx):
    p = parser("lpserver", __doc__)
    p.add_argument("--bind", default="tcp://*:5555", help="endpoint to bind")
    p.add_argument("--work-ms", type=float, default=1000.0, metavar="MS",
                   help="time every request takes before the reply")
    add_fault_options(p, overload_ms=2000.0)
    args = p.parse_args()

    server = ctx.socket(zmq.REP)
    server.linger = 0
    server.bind(args.bind)
    log("ready: bound %s" % server.getsockopt_string(zmq.LAST_ENDPOINT))

    cycles = 0
    while True:
        request = server.recv_multipart()
        cycles += 1
        decision = fault_decision(args, cycles)
        if decision == "crash":
            log("simulating a crash (request %d)" % cycles)
            return 1
        if decision == "overload":
            log("simulating CPU overload (request %d)" % cycles)
            sleep_ms(args.overload_ms)
        log("normal request (%s)" % show_frames(request))
        sleep_ms(args.work_ms)
        server.send_multipart(request)


if __name__ == "__main__":
    run(main, log)
