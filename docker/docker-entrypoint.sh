#!/bin/sh
# Entry point of the Culex image, as in the official eclipse-mosquitto image. Started as
# root (the default), it gives the data and log volumes to the mosquitto user: a bind mount
# arrives owned by whoever created it on the host, and the broker writes there after it has
# dropped its privileges. Then it replaces itself with the command, so the broker is PID 1
# and receives `docker stop`'s SIGTERM and `docker kill -s HUP` directly.
set -e
if [ "$(id -u)" = 0 ]; then
    find /mosquitto/data /mosquitto/log ! -user mosquitto -exec chown mosquitto:mosquitto {} +
fi
exec "$@"
