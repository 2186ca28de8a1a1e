"""boto3 against vpclab's S3: `GetObject` / `HeadObject` with a `PartNumber` the object
does not have. S3 answers 416 `InvalidPartNumber` and, in the error document, the part
that was asked for (`PartNumberRequested`) and how many parts the object has
(`ActualPartCount`); botocore hands every element of S3's `<Error>` to the caller in
`e.response["Error"]`. An object written in one piece has one part. A HEAD answer has
no body, so boto3 sees only the status. Run by tests/api/s3_corners.rs with
VPCLAB_ENDPOINT set; prints `ok` at the end."""

import os
import sys

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["VPCLAB_ENDPOINT"],
    region_name="us-east-1",
    config=botocore.config.Config(s3={"addressing_style": "path"}),
)

BUCKET = "corner-parts"
s3.create_bucket(Bucket=BUCKET)

# A multipart object of two parts: 5 MiB (the least a part but the last may be) and 10
# bytes.
up = s3.create_multipart_upload(Bucket=BUCKET, Key="two-parts")
first = s3.upload_part(
    Bucket=BUCKET,
    Key="two-parts",
    UploadId=up["UploadId"],
    PartNumber=1,
    Body=b"a" * (5 << 20),
)
second = s3.upload_part(
    Bucket=BUCKET,
    Key="two-parts",
    UploadId=up["UploadId"],
    PartNumber=2,
    Body=b"0123456789",
)
s3.complete_multipart_upload(
    Bucket=BUCKET,
    Key="two-parts",
    UploadId=up["UploadId"],
    MultipartUpload={
        "Parts": [
            {"PartNumber": 1, "ETag": first["ETag"]},
            {"PartNumber": 2, "ETag": second["ETag"]},
        ]
    },
)
s3.put_object(Bucket=BUCKET, Key="one-piece", Body=b"just one piece")


def refused(call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response
    sys.exit(f"{call.__name__}({kwargs}) should have failed")


# The last part is still readable; the next one is not.
got = s3.get_object(Bucket=BUCKET, Key="two-parts", PartNumber=2)
assert got["Body"].read() == b"0123456789", "part 2's bytes"
assert got["PartsCount"] == 2, got

r = refused(s3.get_object, Bucket=BUCKET, Key="two-parts", PartNumber=3)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 416, r
err = r["Error"]
assert err["Code"] == "InvalidPartNumber", err
assert err["Message"] == "The requested partnumber is not satisfiable", err
assert err["PartNumberRequested"] == "3", err
assert err["ActualPartCount"] == "2", err

r = refused(s3.get_object, Bucket=BUCKET, Key="one-piece", PartNumber=2)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 416, r
assert r["Error"]["Code"] == "InvalidPartNumber", r
assert r["Error"]["PartNumberRequested"] == "2", r
assert r["Error"]["ActualPartCount"] == "1", r

r = refused(s3.head_object, Bucket=BUCKET, Key="two-parts", PartNumber=7)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 416, r

# A part number outside 1..=10000 is bad input, not a missing part.
r = refused(s3.get_object, Bucket=BUCKET, Key="two-parts", PartNumber=10001)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
assert r["Error"]["Code"] == "InvalidArgument", r

print("ok")
