"""Titanic client peer (the role of the Guide's ticlient, RFC 9/TSP), for interop tests.

It talks to Titanic through the Majordomo client of mdclient.py (REQ, --timeout, --retries sends
on a new socket each). For each of --count requests:

1. titanic.request with body [--service][body...] (--body frames, default "Hello world"); the
   UUID is the frame after the status: "I: request UUID <uuid>";
2. after --poll-ms, titanic.reply [UUID]; on "200" it prints the LAST reply frame
   ("Reply: <text>"), then sends titanic.close [UUID]; on "300" (or any code other than
   200/400/500) "I: no reply yet, trying again...", it waits --pending-ms and asks again.

Only the first three characters of a status count. A "400" or "500" answer (to any of the three)
is fatal: "E: client fatal error" / "E: server fatal error", exit status 1 (the reference treats
500 as fatal too). Unless --no-check, a reply whose frames are not the request body (an echo
service is expected) is reported and the client exits with status 1. After --count requests it
prints "done: N requests OK" and exits 0. When Titanic does not answer (the MDP client gives up)
it prints "abandoned" and exits 2 (the reference exits with SUCCESS there; 2 lets tests tell).
"""

from _common import make_logger, parser, run, show_frames, sleep_ms
from mdclient import AssertionAbort, MajordomoClient

log = make_logger("ticlient")


class Fatal(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Abandoned(Exception):
    pass


def service_call(client, service, body):
    """The reference's s_service_call: the frames after a 200, None for a 300 (or other code)."""
    reply = client.send(service, body)
    if reply is None:
        raise Abandoned(service.decode())
    status = reply[0][:3] if reply else b""
    if status == b"200":
        return reply[1:]
    if status in (b"400", b"500"):
        raise Fatal(status)
    return None


def main(ctx):
    p = parser("ticlient", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--service", default="echo", help="service to run the requests on")
    p.add_argument("--body", action="append", default=None, metavar="TEXT",
                   help="a body frame (repeat for more); default: \"Hello world\"")
    p.add_argument("--count", type=int, default=1, metavar="N", help="requests, one after another")
    p.add_argument("--timeout", type=float, default=2500.0, metavar="MS",
                   help="the MDP client's wait for each answer")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="MDP sends per TSP request")
    p.add_argument("--poll-ms", type=float, default=100.0, metavar="MS",
                   help="wait before each titanic.reply")
    p.add_argument("--pending-ms", type=float, default=5000.0, metavar="MS",
                   help="further wait after a reply that is not 200")
    p.add_argument("--no-check", action="store_true",
                   help="accept any reply (default: the reply must echo the request body)")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    client = MajordomoClient(ctx, args.connect, args.timeout, args.retries, log, args.verbose)
    log("ready: connecting to %s" % args.connect)
    body = [b.encode() for b in args.body] if args.body else [b"Hello world"]
    try:
        for n in range(1, args.count + 1):
            stored = service_call(client, b"titanic.request", [args.service.encode()] + body)
            if not stored:
                log("E: no UUID in the titanic.request answer")
                return 1
            uuid = stored[0]
            log("I: request UUID %s" % uuid.decode("latin-1"))
            while True:
                sleep_ms(args.poll_ms)
                reply = service_call(client, b"titanic.reply", [uuid])
                if reply is not None:
                    last = reply[-1] if reply else b""
                    log("Reply: %s" % last.decode("latin-1"))
                    if not args.no_check and reply != body:
                        log("unexpected reply to request %d: %s" % (n, show_frames(reply)))
                        return 1
                    service_call(client, b"titanic.close", [uuid])
                    log("request %d closed" % n)
                    break
                log("I: no reply yet, trying again...")
                sleep_ms(args.pending_ms)
    except Fatal as fatal:
        which = "client" if fatal.status == b"400" else "server"
        log("E: %s fatal error (%s), aborting" % (which, fatal.status.decode("latin-1")))
        return 1
    except Abandoned as what:
        log("abandoned: no answer from %s" % what)
        return 2
    except AssertionAbort as why:
        log("assertion failed: invalid reply %s (the reference aborts)" % why)
        return 3
    log("done: %d requests OK" % args.count)
    return 0


if __name__ == "__main__":
    run(main, log)
