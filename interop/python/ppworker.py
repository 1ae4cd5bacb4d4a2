"""Paranoid Pirate worker peer (the role of the Guide's ppworker, RFC 6/PPP), for interop tests.

A DEALER socket with a random identity "%04X-%04X" per socket (or --identity) connects to
--connect and sends READY (one frame, 0x01). One poll loop, timeout --heartbeat-interval:

* a 3-frame message [C][""][request] is a request: it is echoed unchanged, then the worker
  "works" for --work-ms AFTER replying, without polling or heartbeating (as the reference);
  requests with any other number of frames are not answered (the reference accepts only 3);
* a 1-frame message starting with 0x02 is a HEARTBEAT; anything else is logged as invalid;
* any message restores the liveness to --liveness and the reconnect delay to --interval-init;
* a poll that times out costs one liveness; at zero the worker logs a heartbeat failure, sleeps
  the reconnect delay (doubled up to --interval-max each time), throws its socket away and opens
  a new one (new identity unless --identity), which says READY again;
* after each poll, when the heartbeat is due, [0x02] is sent (also while the queue is gone).
"""

import zmq

from _common import (add_fault_options, fault_decision, make_logger, now_ms, parser,
                     random_identity, run, show_frames, sleep_ms)

log = make_logger("ppworker")
PPP_READY = b"\x01"
PPP_HEARTBEAT = b"\x02"


def main(ctx):
    p = parser("ppworker", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5556", help="queue backend endpoint")
    p.add_argument("--identity", default=None,
                   help='routing identity, a random "%%04X-%%04X" for each socket when not given')
    p.add_argument("--heartbeat-interval", type=float, default=1000.0, metavar="MS",
                   help="HEARTBEAT_INTERVAL, also the poll timeout")
    p.add_argument("--liveness", type=int, default=3, metavar="N",
                   help="HEARTBEAT_LIVENESS: silent polls before the queue is considered dead")
    p.add_argument("--interval-init", type=float, default=1000.0, metavar="MS",
                   help="INTERVAL_INIT: first reconnect delay")
    p.add_argument("--interval-max", type=float, default=32000.0, metavar="MS",
                   help="INTERVAL_MAX: cap of the doubling reconnect delay")
    p.add_argument("--work-ms", type=float, default=1000.0, metavar="MS",
                   help="time spent after each reply, deaf to the queue")
    add_fault_options(p, overload_ms=3000.0)
    args = p.parse_args()

    def connect():
        identity = args.identity or random_identity()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.setsockopt(zmq.IDENTITY, identity.encode("ascii"))
        sock.connect(args.connect)
        sock.send(PPP_READY)
        return sock, identity

    worker, identity = connect()
    log("ready: %s connected to %s, READY sent" % (identity, args.connect))

    liveness = args.liveness
    interval = args.interval_init
    heartbeat_at = now_ms() + args.heartbeat_interval
    cycles = 0
    while True:
        if worker.poll(args.heartbeat_interval, zmq.POLLIN):
            frames = worker.recv_multipart()
            if len(frames) == 3:
                cycles += 1
                decision = fault_decision(args, cycles)
                if decision == "crash":
                    log("simulating a crash (request %d)" % cycles)
                    return 1
                if decision == "overload":
                    log("simulating CPU overload (request %d)" % cycles)
                    sleep_ms(args.overload_ms)
                log("normal reply (%s)" % show_frames(frames))
                worker.send_multipart(frames)
                liveness = args.liveness
                sleep_ms(args.work_ms)
            elif len(frames) == 1 and frames[0][:1] == PPP_HEARTBEAT:
                liveness = args.liveness
            else:
                log("invalid message (%d frames): %s" % (len(frames), show_frames(frames)))
            interval = args.interval_init
        else:
            liveness -= 1
            if liveness == 0:
                log("heartbeat failure, can't reach queue; reconnecting in %d ms" % interval)
                sleep_ms(interval)
                if interval < args.interval_max:
                    interval = min(interval * 2, args.interval_max)
                worker.close(linger=0)
                worker, identity = connect()
                log("reconnected as %s, READY sent" % identity)
                liveness = args.liveness
        if now_ms() > heartbeat_at:
            heartbeat_at = now_ms() + args.heartbeat_interval
            worker.send(PPP_HEARTBEAT)


if __name__ == "__main__":
    run(main, log)
