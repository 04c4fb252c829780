"""One cold start, run by bench.coldstart in a fresh interpreter as a script (not as part of the
`bench` package, so that nothing but what is measured gets imported).

    python bench/coldstart_child.py FD handler CODE_DIR LAYER_DIR EVENT_FILE
    python bench/coldstart_child.py FD aliyun-sdk EVENT_FILE

bench.inprocess imports it for `load_aliyun_sdk` alone (the same handler measured warm).

Imports the handler the way the Lambda runtime does (code folder, then the layer, first on
sys.path), serves the one event, and writes one JSON line of monotonic timestamps to file
descriptor FD (stdout is the handler's log). With BENCH_PROFILE_TO set, the invocation runs under
cProfile and its statistics go to that file (never in a timed run)."""

import time

STARTED = time.monotonic()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

# For the type checker only: `typing` is not loaded at start-up, and what the child imports is measured.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    function_version = "$LATEST"
    memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    aws_request_id = "11111111-1111-1111-1111-111111111111"
    log_group_name = f"/aws/lambda/{function_name}"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def load_aliyun_sdk() -> "Callable[[dict[str, Any], Context], dict[str, Any]]":
    """The minimal function a developer would write with the official SDK and boto3: one quota
    counter per number and day taken by a conditional `UpdateItem` (ADD, refused at the limit) in
    the quota table, then the same SMS; no idempotency, no log. Imported, and its clients made, at
    module level, as such a function would."""
    import time

    import boto3
    from alibabacloud_dysmsapi20170525 import models
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi import utils_models

    table = os.environ["QUOTA_TABLE_NAME"]
    limit = os.environ.get("SDK_DAILY_LIMIT", "1000000")
    dynamodb = boto3.client("dynamodb")
    client = Client(
        utils_models.Config(
            access_key_id=os.environ["ALIYUN_ACCESS_KEY_ID"],
            access_key_secret=os.environ["ALIYUN_ACCESS_KEY_SECRET"],
            endpoint=os.environ["ALIYUN_ENDPOINT"],
            protocol="http",
            region_id="cn-hangzhou",
            # Signature v1 (HMAC-SHA1) in form parameters, as the gateway signs; the sandbox wants
            # `Format=JSON` exactly where the SDK writes `json`.
            signature_algorithm="v2",
            global_parameters=utils_models.GlobalParameters(queries={"Format": "JSON"}),
        )
    )

    def handler(event: "dict[str, Any]", context: Context) -> "dict[str, Any]":
        body = json.loads(event["body"])
        messages = body["messages"]
        day = time.strftime("%Y-%m-%d", time.gmtime())
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": f"sdk#{messages[0]['phone_number']}#{day}"}},
                UpdateExpression="ADD #n :one",
                ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
                ExpressionAttributeNames={"#n": "sent"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": limit}},
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return {"statusCode": 429, "body": json.dumps({"error": "quota exceeded"})}
        request = models.SendBatchSmsRequest(
            phone_number_json=json.dumps([m["phone_number"] for m in messages]),
            sign_name_json=json.dumps([body["sign_name"]] * len(messages)),
            template_code=body["template_code"],
            template_param_json=json.dumps([m["template_param"] for m in messages]),
        )
        answer = client.send_batch_sms(request)
        return {"statusCode": 200 if answer.body.code == "OK" else 502, "body": json.dumps(answer.body.to_map())}

    return handler


def main() -> None:
    fd = int(sys.argv[1])
    mode = sys.argv[2]
    # The script's folder is not on a Lambda function's path.
    del sys.path[0]
    if mode == "handler":
        code_dir, layer_dir, event_file = sys.argv[3:6]
        sys.path[:0] = [code_dir, layer_dir]
        os.chdir(code_dir)
        with open(event_file) as f:
            event = json.load(f)
        import_start = time.monotonic()
        import app  # type: ignore[import-not-found]

        handler = app.handler
    else:
        with open(sys.argv[3]) as f:
            event = json.load(f)
        import_start = time.monotonic()
        handler = load_aliyun_sdk()
    import_end = time.monotonic()
    profile_to = os.environ.get("BENCH_PROFILE_TO")
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        answer = profiler.runcall(handler, event, Context())
        profiler.dump_stats(profile_to)
    else:
        answer = handler(event, Context())
    done = time.monotonic()
    line = {
        "started": STARTED,
        "import_start": import_start,
        "import_end": import_end,
        "done": done,
        "status": answer.get("statusCode"),
        "modules": len(sys.modules),
    }
    os.write(fd, (json.dumps(line) + "\n").encode())
    os.close(fd)


if __name__ == "__main__":
    main()
