#!/usr/bin/env bash
# Probes Debian's Mosquitto 2.0.11 with a password_file + acl_file to record the acl_file
# semantics the `authfile` module reproduces. Not run by the test suite: it is the evidence
# cited by the table tests in `acl_file_tests.rs` (transcript: real_broker_runs.txt). The ACL
# file is real_broker.acl, which the table tests load too.
#
# Usage: bash real_broker_runs.sh [port]   (loopback only; needs mosquitto, mosquitto_pub/sub,
# mosquitto_passwd). Starts one broker, runs every probe with bounded timeouts, kills it.
set -u
PORT=${1:-18931}
DIR=$(mktemp -d)
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DIR"' EXIT

for user in root alice bob carol dave eve 'a+b' 'x/y'; do
    if [ -e "$DIR/passwd" ]; then mosquitto_passwd -b "$DIR/passwd" "$user" pw
    else mosquitto_passwd -c -b "$DIR/passwd" "$user" pw; fi
done

cp "$(dirname "$0")/real_broker.acl" "$DIR/acl"

cat > "$DIR/mosquitto.conf" <<CONF
user root
listener $PORT 127.0.0.1
allow_anonymous true
password_file $DIR/passwd
acl_file $DIR/acl
sys_interval 1
log_dest file $DIR/broker.log
log_type all
CONF

mosquitto -c "$DIR/mosquitto.conf" &
BROKER=$!
sleep 0.5

# probe NAME "SUB-ARGS" "PUB-ARGS" SUB-FILTER PUB-TOPIC
probe() {
    local name=$1 sub=$2 pub=$3 filter=$4 topic=$5 out
    out=$(timeout 5 mosquitto_sub -p "$PORT" -h 127.0.0.1 $sub -t "$filter" -d -W 2 -C 1 2>&1 &
          sleep 0.4; timeout 5 mosquitto_pub -p "$PORT" -h 127.0.0.1 $pub -t "$topic" -m payload; wait)
    local suback delivered
    suback=$(printf '%s\n' "$out" | grep -o 'Subscribed (mid: 1): [0-9]*' | head -1)
    if printf '%s\n' "$out" | grep -q 'received PUBLISH'; then delivered=DELIVERED; else delivered="NOT delivered"; fi
    printf '%-58s %-24s %s\n' "$name" "${suback:-no SUBACK}" "$delivered"
    printf '    sub: mosquitto_sub %s -t %q   pub: mosquitto_pub %s -t %q\n' "$sub" "$filter" "$pub" "$topic"
}

R="-u root -P pw"
probe "A1 anonymous reads anon/# (rule before first user)" "" "$R" 'anon/#' anon/1
probe "A2 anonymous writes public/x (readwrite)"          "$R" "" 'public/#' public/x
probe "A3 anonymous cannot write anon/1 (read only)"      "$R" "" 'anon/#' anon/1
probe "A4 user dave without section: anonymous rules n/a" "-u dave -P pw" "$R" 'anon/#' anon/1
probe "U1 alice readwrite alice/#: delivery"              "-u alice -P pw" "$R" 'alice/#' alice/1
probe "U2 alice read r/#: her publish is dropped"         "$R" "-u alice -P pw" 'r/#' r/1
probe "U3 alice read r/#: delivery to her"                "-u alice -P pw" "$R" 'r/#' r/1
probe "U4 alice write w/#: subscribe granted, no delivery" "-u alice -P pw" "$R" 'w/#' w/1
probe "U5 alice write w/#: her publish is accepted"       "$R" "-u alice -P pw" 'w/#' w/1
probe "U6 alice readwrite d/# but deny d/secret: delivery" "-u alice -P pw" "$R" 'd/#' d/secret
probe "U7 alice readwrite d/#: d/open delivered"          "-u alice -P pw" "$R" 'd/#' d/open
probe "U8 alice deny d/secret: her publish dropped"       "$R" "-u alice -P pw" 'd/#' d/secret
probe "U9 alice topic with a space"                       "-u alice -P pw" "$R" 'space topic/x' 'space topic/x'
probe "U10 alice subscribes to # (no rule): granted"      "-u alice -P pw" "$R" '#' alice/2
probe "U11 alice subscribes to #, unreadable topic"       "-u alice -P pw" "$R" '#' other/1
probe "U12 eve 'topic read' alone = topic \"read\" rw"     "$R" "-u eve -P pw" 'read' read
probe "U13 second 'user alice' section adds to the first" "-u alice -P pw" "$R" 'again/#' again/1
probe "P1 pattern p/%u/#: alice on p/alice/x"             "-u alice -P pw" "$R" 'p/alice/x' p/alice/x
probe "P2 pattern p/%u/#: alice on p/bob/x"               "-u alice -P pw" "$R" 'p/bob/x' p/bob/x
probe "P3 pattern p/%u/#: anonymous never"                "" "$R" 'p/#' 'p//x'
probe "P4 pattern c/%c: client id devA reads c/devA"      "-u dave -P pw -i devA" "$R" 'c/devA' c/devA
probe "P5 pattern c/%c: client id devA on c/devB"         "-u dave -P pw -i devA" "$R" 'c/devB' c/devB
probe "P6 pattern c/%c applies to anonymous clients"      "-i devA" "$R" 'c/devA' c/devA
probe "P7 pattern mid/x%cy (mid-level %c) write"          "$R" "-u dave -P pw -i K" 'mid/#' mid/xKy
probe "P8 user grant beats pattern deny (carol pd/#)"     "-u carol -P pw" "$R" 'pd/#' pd/blocked
probe "P9 dangerous username a+b: pattern c/%c denied"    "-u a+b -P pw -i devA" "$R" 'c/devA' c/devA
probe "P10 dangerous client id: pattern p/%u denied"      "-u dave -P pw -i dev+A" "$R" 'p/dave/x' p/dave/x
probe "P11 username x/y substituted in slash/%u/z"        "-u x/y -P pw" "$R" 'slash/x/y/z' slash/x/y/z
probe "S1 bob read # does not cover \$SYS"                "-u bob -P pw" "" '$SYS/broker/uptime' '$SYS/none'
probe "S2 root read \$SYS/# receives \$SYS"               "$R" "" '$SYS/broker/uptime' '$SYS/none'
probe "S3 root readwrite \$SYS/#: publish refused"        "$R" "$R" '$SYS/test/x' '$SYS/test/x'
probe "S4 bob read #: +/x does not match \$SYS"           "-u bob -P pw" "$R" '#' '$NOTSYS/x'

# Retained messages are filtered by the read check too.
timeout 5 mosquitto_pub -p "$PORT" -h 127.0.0.1 $R -t other/retained -m payload -r
probe "R1 retained message on a topic alice cannot read"  "-u alice -P pw" "" 'other/retained' 'none/x'
probe "R2 retained message bob can read"                  "-u bob -P pw" "" 'other/retained' 'none/x'

echo "--- broker log lines about ACL denials"
grep -E 'dangerous|Denied' "$DIR/broker.log" | sed 's/^[0-9]*: //' | sort | uniq -c

echo "--- password file lines (2.0.11 skips or warns; the broker still starts)"
HASH=$(grep '^root:' "$DIR/passwd" | cut -d: -f2)
printf '# comment\n\n   \ngarbage line\nnopass:\n  spaced  :  %s  \nplain:text\nshort:$7$101$AAAA$BBBB\nroot:%s\n' "$HASH" "$HASH" > "$DIR/pw2"
printf 'user root\nlistener %s 127.0.0.1\npassword_file %s/pw2\nlog_dest stdout\n' $((PORT+1)) "$DIR" > "$DIR/pw.conf"
(timeout 3 mosquitto -c "$DIR/pw.conf" 2>&1 & pid=$!; sleep 0.5
 for user in spaced root; do
     timeout 3 mosquitto_pub -p $((PORT+1)) -h 127.0.0.1 -u "$user" -P pw -t t -m m 2>&1 | sed "s/^/    $user: /" || true
     echo "    login as '$user' with the right password: exit ${PIPESTATUS[0]}"
 done
 kill $pid 2>/dev/null; wait $pid) | sed 's/^[0-9]*: /    /' | grep -v -E 'mosquitto version|Config loaded|Opening|running|exiting|not be run as root|New conn|New client|disconnected|Client .* closed'

echo "--- parse errors (mosquitto -c with one bad acl line each; exit code and messages)"
for line in 'topic foo bar' 'topic' 'bogus line' 'user' 'topic read a/#/b' 'topic read a+' \
             '  # comment with leading spaces' "$(printf '\ttopic read x')" 'pattern read nosubst'; do
    printf '%s\n' "$line" > "$DIR/bad.acl"
    printf 'user root\nlistener %s 127.0.0.1\nacl_file %s/bad.acl\nlog_dest stdout\n' $((PORT+1)) "$DIR" > "$DIR/bad.conf"
    msg=$(timeout 3 mosquitto -c "$DIR/bad.conf" 2>&1 & pid=$!; sleep 0.5; kill $pid 2>/dev/null; wait $pid; echo "exit=$?")
    printf '[%s]\n%s\n' "$line" "$(printf '%s\n' "$msg" | sed 's/^[0-9]*: /    /' | grep -v -E 'mosquitto version|Config loaded|Opening|running|exiting|Error opening acl')"
done
