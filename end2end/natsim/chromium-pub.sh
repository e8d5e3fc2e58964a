#!/bin/sh
# Playwright executablePath wrapper: run Debian Chromium inside np-pub.
# ip netns exec execs in place (no fork), so Playwright's pipe FDs and PID survive.
exec ip netns exec np-pub /usr/bin/chromium "$@"
