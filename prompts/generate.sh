#!/bin/sh
# Regenerates every shipped prompt from its text (see README.md).
# Needs espeak-ng and sox. Speech prompts are converted to 8 kHz mono 16-bit
# PCM (telephone rate); `welcome` is deliberately left at espeak's native
# 22050 Hz so the server's load-time resampling is exercised.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # name text...
    name=$1; shift
    espeak-ng -v en-us -s 150 -w "$tmp/$name.wav" "$*"
    if [ "$name" = welcome ]; then
        cp "$tmp/$name.wav" "$name.wav"
    else
        # trim espeak's leading/trailing silence, keep a short natural tail
        sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 "$name.wav" \
            silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse pad 0.05 0.25
    fi
}

# --- demo company (dialplans/*.toml)
say welcome          "Thank you for calling Acme Corporation."
say main-menu        "For billing, press 1. For technical support, press 2. For our opening hours, press 3. To speak to an operator, press 0 at any time."
say support-menu     "Technical support. For internet problems, press 1. For problems with your phone line, press 2. To speak to an operator, press 0."
say phone-line-menu  "Phone line support. To hear about current outages, press 1. To report a fault, press 2. To go back, press star."
say outage-info      "There are currently no known outages in your area."
say enter-account    "Please enter your account number, followed by the hash key."
say invalid-entry    "Sorry, that is not a valid account number."
say opening-hours    "Our opening hours are Monday to Friday, 8 A M to 8 P M, and Saturday, 9 A M to 1 P M, Eastern time."
say thank-you        "Thank you."
say closed           "Our offices are currently closed."

# --- shared by menus and the server
say invalid-option   "Sorry, that is not a valid option."
say no-input         "Sorry, we did not receive your selection."
say goodbye          "Thank you for calling. Goodbye."
say please-hold      "Please hold. Your call is important to us."
say you-are-caller   "You are caller number"
say estimated-wait   "Your estimated waiting time is"
say minutes          "minutes"
say transferring     "Please hold while we transfer your call."
say transfer-failed  "Sorry, we could not transfer your call."
say callback-offer   "Press 1 to keep your place in line and we will call you back."
say callback-confirm "Thank you. We have kept your place in line and will call you back as soon as an agent is free."
say callback-when-open "Thank you. We will call you back when we open, in the order your request was made."
say survey-rate      "Before you go, please rate the help you received today. Press 1 for poor, up to 5 for excellent."

i=0
for word in zero one two three four five six seven eight nine; do
    say "digit-$i" "$word"
    i=$((i + 1))
done

# --- hold music: a soft arpeggio, C major / A minor / F major / G major,
# looped by the server.
n=0
for chord in "261.63 329.63 392.00 523.25" "220.00 261.63 329.63 440.00" \
             "174.61 220.00 261.63 349.23" "196.00 246.94 293.66 392.00"; do
    for f in $chord; do
        sox -n -r 8000 -c 1 -b 16 "$tmp/note$(printf %02d $n).wav" \
            synth 0.3 sine "$f" sine "$(echo "$f * 2" | bc -l)" remix - \
            fade q 0.02 0.3 0.12 vol 0.25
        n=$((n + 1))
    done
done
sox "$tmp"/note*.wav -r 8000 -c 1 -b 16 hold-music.wav

# Agent feature codes (*11 login, *12 logout, *13 pause/unpause)
say agent-logged-in  "You are logged in."
say agent-logged-out "You are logged out."
say agent-paused     "You are paused."
say agent-available  "You are available."

# Callbacks
say callback-number      "To be called back at the number you are calling from, press 1. To use another number, enter it now, followed by the hash key."
say callback-unavailable "Sorry, we cannot offer you a callback right now. Please stay on the line."
say callback-pending     "You already have a callback request waiting. Press 1 to keep it, or press 2 to cancel it and wait on the line."
say callback-cancelled   "Your callback request has been cancelled."
say callback-whisper     "Callback request. The customer called"
say minutes-ago          "minutes ago. Connecting you now."
say callback-intro       "Hello, this is Acme Corporation returning your call. To be connected to an agent now, press 1. To cancel, press 2."

# Number prompts of `say` nodes (num-N, ord-N, day-*, month-*, say-*): a
# little faster and with short pads, as they are strung together.
say() { # name text...
    name=$1; shift
    espeak-ng -v en-us -s 165 -w "$tmp/$name.wav" "$*"
    sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 "$name.wav" \
        silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse pad 0.02 0.06
}
ones="zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
n=0
for w in $ones; do say "num-$n" "$w"; n=$((n + 1)); done
n=2
for w in twenty thirty forty fifty sixty seventy eighty ninety; do say "num-$((n * 10))" "$w"; n=$((n + 1)); done
n=1
for w in first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth \
         thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth \
         twenty-first twenty-second twenty-third twenty-fourth twenty-fifth twenty-sixth \
         twenty-seventh twenty-eighth twenty-ninth thirtieth thirty-first; do
    say "ord-$n" "$w"; n=$((n + 1))
done
for d in monday tuesday wednesday thursday friday saturday sunday; do say "day-$d" "$d"; done
for m in january february march april may june july august september october november december; do
    say "month-$m" "$m"
done
for w in hundred thousand million minus and the of dollar dollars cent cents; do say "say-$w" "$w"; done
say say-oh "oh"
say say-am "A M"
say say-pm "P M"

# The order-status demo (dialplans/order-status.toml)
say enter-order      "Please enter your order number, followed by the hash key."
say your-order       "Your order"
say order-ships-on   "ships on"
say order-status-unavailable "Sorry, we cannot look up your order right now."

# Call recording (`record_announcement` on a queue)
say recording-notice "This call may be recorded for quality and training."
