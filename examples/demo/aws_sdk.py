"""The demo's AWS part: an unmodified boto3, default credential chain, no keys. roost exported
AWS_ROLE_ARN's companions (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME); boto3 calls
AssumeRoleWithWebIdentity by itself."""
import base64
import json
import os
import boto3

with open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]) as f:
    payload = f.read().split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(f"   token file: sub={claims['sub']} aud={claims['aud']} iat={claims['iat']} exp={claims['exp']}")
session = boto3.session.Session()
print("   boto3 credentials from:", session.get_credentials().method)
print("   STS says I am:", session.client("sts").get_caller_identity()["Arn"])
obj = session.client("s3").get_object(Bucket="roost-test", Key="hello.txt")["Body"].read()
print("   S3 object:", obj.decode())
