# Shared helpers of the bench scripts (sourced, not run).

# repeat_to_size SRC DST MB: writes to DST whole copies of the file SRC
# (a newline added when it lacks one) until DST holds at least MB MiB: a
# large trace made of a real captured one.
repeat_to_size() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
src, dst, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
one = open(src, "rb").read()
if not one.endswith(b"\n"):
    one += b"\n"
n = (mb << 20) // len(one) + 1
with open(dst, "wb") as f:
    for _ in range(n):
        f.write(one)
PY
}
