"""The workload: an unmodified boto3 with the default credential chain and no keys. It finds
AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (exported by roost) and calls
AssumeRoleWithWebIdentity by itself."""
import os
import boto3

assert not any(k in os.environ for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")), "static keys present"
session = boto3.session.Session()
creds = session.get_credentials()
print("CREDENTIALS", creds.method)
print("ARN", session.client("sts").get_caller_identity()["Arn"])
body = session.client("s3").get_object(Bucket="roost-test", Key="hello.txt")["Body"].read()
print("S3", body.decode())
