"""A local AWS for the broker tests: moto (STS and S3) behind an STS front that does what real
STS does with AssumeRoleWithWebIdentity before it answers: it verifies the web identity token
against the issuer's JWKS (signature, iss, aud, exp) and checks RoleSessionName against
[\\w+=,.@-]{2,64}. Every verification is logged as a JSON line.

usage: aws_standin.py --jwks-url URL --issuer ISS --ready FILE --log FILE
The ready file gets {"sts": "http://127.0.0.1:P", "s3": "http://127.0.0.1:Q"}.
"""
import argparse
import http.server
import json
import re
import threading
import urllib.parse
import urllib.request

import boto3
import jwt
from moto.server import ThreadedMotoServer

SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jwks-url", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--audience", default="sts.amazonaws.com")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"

    # The data the workload will read, created with the stand-in's own dummy keys: the
    # workload itself has none.
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="seed", aws_secret_access_key="seed")
    s3.create_bucket(Bucket="roost-test")
    s3.put_object(Bucket="roost-test", Key="hello.txt", Body=b"hello from S3 via web identity")

    jwks = jwt.PyJWKClient(args.jwks_url)
    log_lock = threading.Lock()

    def log(entry):
        with log_lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    class Front(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def relay(self, body):
            req = urllib.request.Request(moto_url + self.path, data=body, method=self.command)
            for k, v in self.headers.items():
                if k.lower() not in ("host", "content-length"):
                    req.add_header(k, v)
            try:
                with urllib.request.urlopen(req) as resp:
                    status, headers, payload = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                status, headers, payload = e.code, e.headers, e.read()
            self.send_response(status)
            self.send_header("Content-Type", headers.get("Content-Type", "text/xml"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def refuse(self, why):
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                f"<Message>{why}</Message></Error></ErrorResponse>"
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            form = urllib.parse.parse_qs(body.decode())
            action = form.get("Action", [""])[0]
            if action != "AssumeRoleWithWebIdentity":
                log({"action": action})
                return self.relay(body)
            token = form.get("WebIdentityToken", [""])[0]
            session = form.get("RoleSessionName", [""])[0]
            entry = {"action": action, "role": form.get("RoleArn", [""])[0], "session": session}
            try:
                if not SESSION_NAME.match(session):
                    raise ValueError(f"RoleSessionName {session!r} does not match")
                key = jwks.get_signing_key_from_jwt(token)
                claims = jwt.decode(token, key.key, algorithms=["RS256"],
                                    audience=args.audience, issuer=args.issuer,
                                    options={"require": ["exp", "iat", "sub", "aud", "iss"]})
                entry.update(ok=True, sub=claims["sub"], aud=claims["aud"], exp=claims["exp"])
            except Exception as e:  # any verification failure is STS's InvalidIdentityToken
                entry.update(ok=False, error=str(e))
                log(entry)
                return self.refuse(str(e))
            log(entry)
            return self.relay(body)

        do_GET = lambda self: self.relay(None)

    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    with open(args.ready + ".tmp", "w") as f:
        json.dump({"sts": f"http://127.0.0.1:{front.server_address[1]}", "s3": moto_url}, f)
    import os
    os.rename(args.ready + ".tmp", args.ready)
    threading.Event().wait()


if __name__ == "__main__":
    main()
