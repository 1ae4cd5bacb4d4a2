"""MMI lookup peer (the role of the Guide's mmiecho, RFC 8/MMI over RFC 7/MDP 0.1), for interop
tests.

With the synchronous client of mdclient.py (a REQ socket, --timeout and --retries as there) it
sends ["MDPC01"]["mmi.service"][name] (--service, default "echo") and prints the code the broker
puts in place of the last body frame: "Lookup echo service: 200" when the service has a worker,
"404" when not. --mmi asks another management service instead (a broker answers "501" for one it
does not implement). Exit status 0 once a reply came, whatever the code; 2 when the broker did
not answer ("E: no response from broker, make sure it's running"); 3 on a malformed reply.
"""

from _common import make_logger, parser, run
from mdclient import AssertionAbort, MajordomoClient

log = make_logger("mmiecho")


def main(ctx):
    p = parser("mmiecho", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--service", default="echo", help="the service to look up")
    p.add_argument("--mmi", default="mmi.service", help="the management service to ask")
    p.add_argument("--timeout", type=float, default=2500.0, metavar="MS",
                   help="time to wait for the reply to each send")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="sends in all")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    client = MajordomoClient(ctx, args.connect, args.timeout, args.retries, log, args.verbose)
    log("ready: connecting to %s" % args.connect)
    try:
        reply = client.send(args.mmi.encode(), [args.service.encode()])
    except AssertionAbort as why:
        log("assertion failed: invalid reply %s (the reference aborts)" % why)
        return 3
    if reply is None:
        log("E: no response from broker, make sure it's running")
        return 2
    code = reply[-1].decode("latin-1") if reply else ""
    log("Lookup %s service: %s" % (args.service, code))
    return 0


if __name__ == "__main__":
    run(main, log)
