#!/bin/sh
# The demo's aws service: an unmodified boto3 with no keys, on the web identity token roost
# fetched for this service (and refreshes at about half its 20 s life).
echo "AWS_ROLE_ARN=$AWS_ROLE_ARN; roost exported AWS_WEB_IDENTITY_TOKEN_FILE=$AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_SESSION_NAME=$AWS_ROLE_SESSION_NAME"
echo "static keys in env: $(env | grep -c '^AWS_SECRET_ACCESS_KEY=\|^AWS_ACCESS_KEY_ID=' || true)"
"$DEMO_PYTHON" "$DEMO_REPO/examples/demo/aws_sdk.py"
echo "(waiting 12 s: the 20 s token is refreshed at about half its life)"
sleep 12
"$DEMO_PYTHON" "$DEMO_REPO/examples/demo/aws_sdk.py"
echo "done"
