"""Binary Star client peer (the role of the Guide's bstarcli), written for interop tests.

Two servers, --primary-server and --backup-server; the client starts with the primary. A REQ
socket sends numbered requests, one frame each holding the ASCII decimal sequence number (from
--first, default 1 as the C reference), and expects the server to echo that number:

* a reply equal to the sequence number is a success: the client pauses --interval ms and sends
  the next request;
* any other reply is reported as a bad reply and the client keeps waiting (a fresh full
  --timeout);
* no reply within --timeout: the client closes its socket (linger 0), switches to the other
  server, pauses --settle-delay ms, opens a new socket to that server and sends the same request
  again. It switches on every timeout, never prefers the primary and never gives up.

Exit status: 0 once --count requests succeeded (prints "done: N requests OK"), 0 on
SIGTERM/SIGINT.
"""

import zmq

from _common import make_logger, parser, run, show_frames, sleep_ms

log = make_logger("bstarcli")


def parse_sequence(frames):
    if len(frames) != 1:
        return None
    try:
        return int(frames[0].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def main(ctx):
    p = parser("bstarcli", __doc__)
    p.add_argument("--primary-server", default="tcp://localhost:5001", help="the primary's voter")
    p.add_argument("--backup-server", default="tcp://localhost:5002", help="the backup's voter")
    p.add_argument("--timeout", type=float, default=1000.0, metavar="MS",
                   help="REQUEST_TIMEOUT: wait for a reply before switching servers")
    p.add_argument("--settle-delay", type=float, default=2000.0, metavar="MS",
                   help="SETTLE_DELAY: pause before sending to the other server")
    p.add_argument("--interval", type=float, default=1000.0, metavar="MS",
                   help="pause after each good reply")
    p.add_argument("--count", type=int, default=0, metavar="N", help="requests to send, 0 for no limit")
    p.add_argument("--first", type=int, default=1, metavar="N", help="first sequence number")
    args = p.parse_args()

    servers = [args.primary_server, args.backup_server]
    current = 0

    def open_socket():
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(servers[current])
        return sock

    client = open_socket()
    log("ready: servers %s, %s; talking to %s" % (servers[0], servers[1], servers[current]))

    succeeded = 0
    sequence = args.first
    while args.count == 0 or succeeded < args.count:
        request = str(sequence).encode("ascii")
        client.send(request)
        while True:
            if client.poll(args.timeout, zmq.POLLIN):
                reply = client.recv_multipart()
                if parse_sequence(reply) == sequence:
                    log("server replied OK (%d) from %s" % (sequence, servers[current]))
                    succeeded += 1
                    break
                log("bad reply from %s: %s" % (servers[current], show_frames(reply)))
                continue
            previous = servers[current]
            current = (current + 1) % len(servers)
            log("no reply from %s within %d ms (request %d): switching to %s" % (
                previous, args.timeout, sequence, servers[current]))
            client.close(linger=0)
            sleep_ms(args.settle_delay)
            client = open_socket()
            client.send(request)
        sequence += 1
        if args.count == 0 or succeeded < args.count:
            sleep_ms(args.interval)
    client.close(linger=0)
    log("done: %d requests OK" % succeeded)
    return 0


if __name__ == "__main__":
    run(main, log)
