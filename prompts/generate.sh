#!/usr/bin/env bash
# Regenerates the shipped prompts: espeak-ng speaks each text, sox makes it 8 kHz mono
# 16-bit PCM (what telephony plays; the server also reads other rates and G.711 WAV).
#   apt-get install -y espeak-ng sox && prompts/generate.sh
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # name text
  espeak-ng -v en-us -s 150 -w "$tmp/$1.wav" "$2"
  sox "$tmp/$1.wav" -r 8000 -c 1 -b 16 "$1.wav"
}

# Faster, with the leading and trailing silence cut: the fast-track greeting must stay
# under 1.5 s so a known VIP is REFERred within 2 s of the answer.
say_brief() { # name text
  espeak-ng -v en-us -s 210 -w "$tmp/$1.wav" "$2"
  sox "$tmp/$1.wav" -r 8000 -c 1 -b 16 "$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
}

# Music on hold, made here so it is ours to ship: a soft four-note chime (C–E–G–E), each
# note a plucked string with a fade, 3.2 s in all, looped while a lookup is slow.
hold_music() {
  local notes=(C4 E4 G4 E4) i=0
  for n in "${notes[@]}"; do
    sox -n -r 8000 -c 1 -b 16 "$tmp/note$i.wav" synth 0.8 pluck "$n" fade 0.01 0.8 0.3 vol 0.4
    i=$((i + 1))
  done
  sox "$tmp"/note0.wav "$tmp"/note1.wav "$tmp"/note2.wav "$tmp"/note3.wav hold_music.wav
}

say welcome          "Welcome to Concierge. One moment while we find your account."
say enter_code       "Please enter your customer ID or security code, followed by the hash key."
say invalid_code     "Sorry, that code is not valid."
say transfer_vip     "Thank you. Transferring you to our VIP desk."
say transfer_service "Transferring you to customer service."
say goodbye          "Sorry, we could not complete your call. Goodbye."
say echo_intro       "Echo test. Enter some digits, then press hash."
say you_entered      "You entered"
say vip_desk         "You are through to the VIP desk. An agent will be with you shortly."
say service_desk     "You are through to customer service. An agent will be with you shortly."
say please_hold      "Please hold while we connect you."
say one_moment       "One moment please."
say_brief vip_greeting "Welcome back, connecting you."
hold_music
say code_locked      "For your security, codes cannot be entered from this line right now. Transferring you to customer service."
for d in 0 1 2 3 4 5 6 7 8 9; do say "digit_$d" "$d"; done
say digit_star  "star"
say digit_pound "hash"
say digit_a "A"
say digit_b "B"
say digit_c "C"
say digit_d "D"
