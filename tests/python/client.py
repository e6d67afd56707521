"""The real python-socketio client against the gateway, driven by tests/e2e/socketio-python.test.mjs.

    python client.py SCENARIO URL TOKEN [ROOM]

SCENARIO is `default` (python-socketio's own transports: long-polling, then the WebSocket),
`polling` (transports=['polling']) or `expired` (TOKEN is expired: connect() must fail). The
token goes in `auth` exactly as an application would write it; nothing else is changed.

Every line on stdout is one JSON object. For `default` and `polling`:
  {"ready": true, "transport": ..., "steps": [...]}  connected (steps: what python-engineio
                                      logged on the way); the test pushes `order.shipped` now
  {"event": "order.shipped", "args": [data, offset]}
  {"ack": "room.join", "answer": {...}}
  {"ack": "room.send", "answer": {...}}
  {"event": "message", "args": [message]}
  {"done": true, "transport": ...}
For `expired`:
  {"refused": "ConnectionError", "message": str(exc), "connect_error": [data...]}
Anything unexpected ends the script with {"error": ...} and exit status 1. Every wait has a
timeout, so the script always ends on its own.
"""

import json
import logging
import queue
import sys

import socketio

TIMEOUT = 15  # seconds, for every wait

# What python-engineio logs (at INFO) as it connects and upgrades: the steps the test checks.
STEPS = (
    'Attempting polling connection',
    'Polling connection accepted',
    'Attempting WebSocket upgrade',
    'WebSocket upgrade was successful',
    'WebSocket upgrade failed',
    'Attempting WebSocket connection',
    'WebSocket connection accepted',
)


class Steps(logging.Handler):
    """Keeps the STEPS that python-engineio logs, in order."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seen = []

    def emit(self, record):
        message = record.getMessage()
        self.seen.extend(step for step in STEPS if message.startswith(step))


def engineio_logger():
    """A logger for socketio.Client(engineio_logger=...) and the Steps it records."""
    steps = Steps()
    logger = logging.getLogger('client.engineio')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(steps)
    return logger, steps


def say(**fields):
    print(json.dumps(fields), flush=True)


def fail(message):
    say(error=message)
    sys.exit(1)


def wait_for(events, name):
    """The next (name, args) from the handlers' queue, which must be `name`."""
    try:
        got, args = events.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f'no {name} within {TIMEOUT} s')
    if got != name:
        fail(f'expected {name}, got {got} {args!r}')
    return args


def session(url, auth, transports, room):
    events = queue.Queue()
    # No reconnection: a session that drops must fail the test, not come back quietly.
    logger, steps = engineio_logger()
    sio = socketio.Client(reconnection=False, engineio_logger=logger)
    sio.on('order.shipped', lambda *args: events.put(('order.shipped', args)))
    sio.on('message', lambda *args: events.put(('message', args)))
    # wait_timeout: connect() gives the namespace's CONNECT answer 1 s by default, short for a
    # local gateway's first request on a busy machine.
    sio.connect(url, auth=auth, transports=transports, wait_timeout=TIMEOUT)
    try:
        # python-engineio does the probe and the move to the WebSocket inside connect(), before
        # it returns (the CONNECT packet, queued meanwhile, goes out on the WebSocket): when the
        # server offers the upgrade, transport() already says 'websocket' here.
        say(ready=True, transport=sio.transport(), steps=steps.seen)
        args = wait_for(events, 'order.shipped')
        say(event='order.shipped', args=list(args))
        answer = sio.call('room.join', {'room_id': room}, timeout=TIMEOUT)
        say(ack='room.join', answer=answer)
        answer = sio.call('room.send', {'room_id': room, 'body': 'hi'}, timeout=TIMEOUT)
        say(ack='room.send', answer=answer)
        args = wait_for(events, 'message')
        say(event='message', args=list(args))
        say(done=True, transport=sio.transport())
    finally:
        sio.disconnect()


def expired(url, auth):
    errors = []
    sio = socketio.Client(reconnection=False)
    sio.on('connect_error', lambda *data: errors.append(list(data)))
    try:
        sio.connect(url, auth=auth, wait_timeout=TIMEOUT)
    except socketio.exceptions.ConnectionError as exc:
        say(refused=type(exc).__name__, message=str(exc), connect_error=errors)
        return
    sio.disconnect()
    fail('connect() succeeded with an expired token')


def main():
    scenario, url, token = sys.argv[1:4]
    room = sys.argv[4] if len(sys.argv) > 4 else None
    if scenario == 'default':
        session(url, {'token': token}, None, room)
    elif scenario == 'polling':
        session(url, {'token': 'Bearer ' + token}, ['polling'], room)
    elif scenario == 'expired':
        expired(url, {'token': token})
    else:
        fail(f'unknown scenario {scenario}')


if __name__ == '__main__':
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the test, which prints it
        fail(f'{type(exc).__name__}: {exc}')
