"""Reads a token file every 2 ms for SECONDS seconds, the way an SDK would at any moment, and
reports what it saw: every read must be a whole, unexpired JWT without a trailing newline.

usage: token_reader.py FILE SECONDS  (prints one JSON line)"""
import base64
import json
import sys
import time

path, seconds = sys.argv[1], float(sys.argv[2])
reads = bad = expired = 0
seen = []
problems = []
end = time.time() + seconds
while time.time() < end:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        bad += 1
        problems.append(f"open: {e}")
        time.sleep(0.002)
        continue
    reads += 1
    try:
        text = raw.decode()
        if text != text.strip() or text.count(".") != 2:
            raise ValueError(f"not a bare JWT: {text[:20]!r}...{text[-5:]!r}")
        payload = text.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["exp"] <= time.time():
            expired += 1
            problems.append(f"expired token (exp {claims['exp']})")
        if not seen or seen[-1] != text:
            seen.append(text)
    except Exception as e:
        bad += 1
        problems.append(str(e))
    time.sleep(0.002)
print(json.dumps({"reads": reads, "bad": bad, "expired": expired,
                  "distinct": len(set(seen)), "problems": problems[:5]}))
