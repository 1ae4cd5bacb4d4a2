"""Binary Star server peer (the role of the Guide's bstarsrv2 on its reactor bstar), for interop
tests: one server of a primary/backup pair, an echo service.

-p / --primary or -b / --backup chooses the role (exactly one). Sockets:

* the voter, a ROUTER bound to --voter: every message is a client vote, stepped through the state
  machine; an accepted one is echoed unchanged (all frames, routing id first), a rejected one is
  read and dropped without a reply;
* a PUB bound to --local, which sends this server's state every --heartbeat-interval, first one
  interval after start: one frame, the ASCII digit 1 PRIMARY, 2 BACKUP, 3 ACTIVE, 4 PASSIVE;
* a SUB connected to --remote (the peer's PUB), subscribed to everything.

The state machine is the reactor's: the server starts in PRIMARY or BACKUP; a peer message
refreshes the peer expiry (now + --peer-expiry, 2 heartbeats by default) BEFORE it is stepped,
and so does the start. PRIMARY goes ACTIVE on the peer's BACKUP and PASSIVE on its ACTIVE; it
takes a vote (and goes ACTIVE) only once the peer expiry has passed. BACKUP goes PASSIVE on the
peer's ACTIVE and takes no vote. PASSIVE goes ACTIVE on the peer's PRIMARY or BACKUP (the peer
restarted) and on a vote once the peer expiry has passed. ACTIVE takes every vote. The peer's
ACTIVE while ACTIVE (dual actives) and the peer's PASSIVE while PASSIVE (dual passives) are fatal.

As in the reference, any message from the peer counts as a sign of life; its first frame is read
as a decimal number (leading digits, like C atoi). Numbers other than 1..4 are logged as invalid
and ignored (the reference turned "5" into a client vote; not reproduced). Each loop pass sends
a due heartbeat before it handles input, as the reference's event loop runs timers first.
Transitions ("<why>, ready as active|passive") and rejected requests are logged; --verbose also
logs every state the peer announces ("peer state PRIMARY").

Exit status: 3 after a fatal condition ("fatal error: dual actives" or "dual passives"; the
reference exits 0 there), after giving the state publisher up to one heartbeat to deliver the
last state it sent; 0 on SIGTERM/SIGINT.
"""

import zmq

from _common import make_logger, now_ms, parser, run, show_frames

log = make_logger("bstarsrv")

PRIMARY, BACKUP, ACTIVE, PASSIVE = 1, 2, 3, 4
PEER_PRIMARY, PEER_BACKUP, PEER_ACTIVE, PEER_PASSIVE, CLIENT_REQUEST = 1, 2, 3, 4, 5
NAMES = {PRIMARY: "PRIMARY", BACKUP: "BACKUP", ACTIVE: "ACTIVE", PASSIVE: "PASSIVE"}

DEFAULTS = {
    "primary": ("tcp://*:5001", "tcp://*:5003", "tcp://localhost:5004"),
    "backup": ("tcp://*:5002", "tcp://*:5004", "tcp://localhost:5003"),
}


class Fatal(Exception):
    """The pair is broken: both servers active, or both passive."""


def leading_number(frame):
    """The decimal number at the start of `frame`, as C atoi reads it (0 when there is none)."""
    text = frame.decode("latin-1").lstrip(" \t\n\r\f\v")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def step(state, event, now, peer_expiry):
    """One transition: returns (next state, accept, why it changed or None). Raises Fatal."""
    expired = now >= peer_expiry
    if state == PRIMARY:
        if event == PEER_BACKUP:
            return ACTIVE, None, "backup is passive"
        if event == PEER_ACTIVE:
            return PASSIVE, None, "backup is active"
        if event == CLIENT_REQUEST:
            if expired:
                return ACTIVE, True, "client vote with peer silent"
            return PRIMARY, False, None
        return PRIMARY, None, None
    if state == BACKUP:
        if event == PEER_ACTIVE:
            return PASSIVE, None, "primary is active"
        if event == CLIENT_REQUEST:
            return BACKUP, False, None
        return BACKUP, None, None
    if state == ACTIVE:
        if event == PEER_ACTIVE:
            raise Fatal("dual actives")
        if event == CLIENT_REQUEST:
            return ACTIVE, True, None
        return ACTIVE, None, None
    # PASSIVE
    if event == PEER_PRIMARY:
        return ACTIVE, None, "primary is restarting"
    if event == PEER_BACKUP:
        return ACTIVE, None, "backup is restarting"
    if event == PEER_PASSIVE:
        raise Fatal("dual passives")
    if event == CLIENT_REQUEST:
        if expired:
            return ACTIVE, True, "client vote with peer silent"
        return PASSIVE, False, None
    return PASSIVE, None, None


def main(ctx):
    p = parser("bstarsrv", __doc__)
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("-p", "--primary", action="store_true", help="run as the primary")
    role.add_argument("-b", "--backup", action="store_true", help="run as the backup")
    p.add_argument("--voter", default=None,
                   help="endpoint to bind for clients (default tcp://*:5001 primary, tcp://*:5002 backup)")
    p.add_argument("--local", default=None,
                   help="endpoint to bind the state publisher on (default tcp://*:5003 / tcp://*:5004)")
    p.add_argument("--remote", default=None,
                   help="the peer's state publisher (default tcp://localhost:5004 / tcp://localhost:5003)")
    p.add_argument("--heartbeat-interval", type=float, default=1000.0, metavar="MS",
                   help="HEARTBEAT: interval between state messages")
    p.add_argument("--peer-expiry", type=float, default=None, metavar="MS",
                   help="peer silence before a vote can fail over (default 2 x heartbeat)")
    p.add_argument("--verbose", action="store_true", help="log every state message from the peer")
    args = p.parse_args()

    name = "primary" if args.primary else "backup"
    default_voter, default_local, default_remote = DEFAULTS[name]
    heartbeat = args.heartbeat_interval
    expiry_ms = args.peer_expiry if args.peer_expiry is not None else 2 * heartbeat

    voter = ctx.socket(zmq.ROUTER)
    voter.linger = 0
    voter.bind(args.voter or default_voter)
    statepub = ctx.socket(zmq.PUB)
    statepub.linger = 0
    statepub.bind(args.local or default_local)
    statesub = ctx.socket(zmq.SUB)
    statesub.linger = 0
    statesub.setsockopt(zmq.SUBSCRIBE, b"")
    statesub.connect(args.remote or default_remote)

    state = PRIMARY if args.primary else BACKUP
    peer_expiry = now_ms() + expiry_ms
    send_at = now_ms() + heartbeat
    log("ready: %s, voter %s, state %s, peer %s" % (
        name, voter.getsockopt_string(zmq.LAST_ENDPOINT),
        statepub.getsockopt_string(zmq.LAST_ENDPOINT), args.remote or default_remote))

    poller = zmq.Poller()
    poller.register(voter, zmq.POLLIN)
    poller.register(statesub, zmq.POLLIN)

    def apply(event):
        nonlocal state
        new_state, accept, why = step(state, event, now_ms(), peer_expiry)
        if new_state != state:
            log("%s, ready as %s" % (why, NAMES[new_state].lower()))
            state = new_state
        return accept

    try:
        while True:
            ready = dict(poller.poll(max(0.0, send_at - now_ms())))
            if now_ms() >= send_at:
                statepub.send(str(state).encode("ascii"))
                send_at += heartbeat
                if send_at < now_ms():
                    send_at = now_ms() + heartbeat
            if statesub in ready:
                frames = statesub.recv_multipart()
                peer_expiry = now_ms() + expiry_ms
                event = leading_number(frames[0])
                if PEER_PRIMARY <= event <= PEER_PASSIVE:
                    if args.verbose:
                        log("peer state %s" % NAMES[event])
                    apply(event)
                else:
                    log("invalid state message from peer: %s" % show_frames(frames))
            if voter in ready:
                message = voter.recv_multipart()
                if apply(CLIENT_REQUEST):
                    voter.send_multipart(message)
                else:
                    log("request rejected (%s): no reply" % NAMES[state])
    except Fatal as why:
        log("fatal error: %s, aborting (we were %s)" % (why, NAMES[state]))
        # Let the state sent in this pass reach the peer, so that it learns of the broken pair
        # too (the rest of the context is destroyed with linger 0).
        statepub.close(linger=int(heartbeat))
        return 3


if __name__ == "__main__":
    run(main, log)
