#!/bin/sh
# ipmi_sim chassis_control helper for tests/peers/ipmi/bmc_sim.py.
#
#   chassis.sh DIR get PARM...          -> "PARM:VALUE" per line (power, boot)
#   chassis.sh DIR set PARM VAL [...]   -> nothing on success
#   chassis.sh DIR check                -> exit 0
#
# ipmi_sim runs it for every Chassis Control / Get Chassis Status / boot option request
# (lanserv/bmc_chassis.c). State lives in DIR:
#   DIR/power        1 = on, 0 = off (created as 1 when missing; the harness writes it at start)
#   DIR/boot         the last boot device set (none, pxe, default, cdrom, bios)
#   DIR/chassis.log  one line per control action: "<unix time with ns> <parm> <value...>", e.g.
#                      1712345678.123456789 power 0
#                      1712345679.125012345 power 1
# Power cycle (Chassis Control 02h) is ipmi_sim's "set power 0" and, from a 1 s timer,
# "set power 1": two lines. Hard reset (03h) logs "reset 1", soft shutdown (05h) "shutdown 1"
# (and powers off), Chassis Identify "identify INTERVAL FORCE". ipmi_sim quotes every value
# (lanserv/extcmd.c: `DIR set power "1"`), so the identify value is one word here.
dir="$1"; op="$2"
[ -n "$dir" ] && [ -n "$op" ] || { echo "usage: chassis.sh DIR get|set|check ..."; exit 1; }
shift 2
f="$dir/power"
[ -f "$f" ] || echo 1 > "$f"
log() { echo "$(date +%s.%N) $*" >> "$dir/chassis.log"; }

case "$op" in
  get)
    for p in "$@"; do
      case "$p" in
        power) echo "power:$(cat "$f")";;
        boot)  echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)";;
        *) echo "Invalid parameter: $p"; exit 1;;
      esac
    done;;
  set)
    while [ $# -ge 2 ]; do
      parm="$1"; val="$2"; shift 2
      case "$parm" in
        power)    case "$val" in 0|1) ;; *) echo "Invalid power value: $val"; exit 1;; esac
                  echo "$val" > "$f"; log power "$val";;
        reset)    log reset "$val";;
        shutdown) echo 0 > "$f"; log shutdown "$val";;
        boot)     echo "$val" > "$dir/boot"; log boot "$val";;
        identify) log identify $val;;     # ipmi_sim passes "INTERVAL FORCE" as one quoted word
        *) echo "Invalid parameter: $parm"; exit 1;;
      esac
    done
    [ $# -eq 0 ] || { echo "No value present for parameter $1"; exit 1; };;
  check) exit 0;;
  *) echo "Unknown operation: $op"; exit 1;;
esac
exit 0
