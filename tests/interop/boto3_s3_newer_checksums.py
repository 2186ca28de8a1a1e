"""boto3 against vpclab's S3 with the checksum algorithms AWS added after the first five:
SHA512, MD5, XXHASH64, XXHASH3 and XXHASH128 (the `ChecksumAlgorithm` enumeration of
botocore's S3 model). For each: PutObject with the checksum is verified and the value
kept (a wrong one is BadDigest), HeadObject and GetObject in checksum mode return it,
a multipart upload created with the algorithm keeps each part's checksum and completes
with the COMPOSITE checksum (the algorithm over the parts' binary digests, then `-N`),
which GetObjectAttributes and ListParts report, a FULL_OBJECT upload with it is refused,
and CopyObject computes it when asked. Run by tests/api/s3.rs with VPCLAB_ENDPOINT set.

botocore computes SHA512 itself; MD5 is not among its flexible checksums and the XXHASH
ones need the AWS CRT, so for those the script computes the value (hashlib, the xxhash
module) and passes it as `ChecksumMD5` / `ChecksumXXHASH64` …, which botocore sends as
the `x-amz-checksum-*` header beside `x-amz-sdk-checksum-algorithm`."""

import base64
import hashlib
import os
import sys

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")
try:
    import xxhash
except ImportError:
    sys.exit("the xxhash module is not installed: run `bash scripts/install-test-deps`")

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["VPCLAB_ENDPOINT"],
    region_name="us-east-1",
    config=botocore.config.Config(s3={"addressing_style": "path"}),
)

# Each algorithm's digest as S3 puts it on the wire before base64: the hashes' bytes,
# XXHASH's integers big-endian (xxhash's `digest()`, the canonical form).
DIGESTS = {
    "SHA512": lambda b: hashlib.sha512(b).digest(),
    "MD5": lambda b: hashlib.md5(b).digest(),
    "XXHASH64": lambda b: xxhash.xxh64(b).digest(),
    "XXHASH3": lambda b: xxhash.xxh3_64(b).digest(),
    "XXHASH128": lambda b: xxhash.xxh3_128(b).digest(),
}


def b64(d):
    return base64.b64encode(d).decode()


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, call succeeded")


bucket = "newer-sums"
s3.create_bucket(Bucket=bucket)
data = bytes((i * 7) % 251 for i in range(300_000))
# Two parts: the first at S3's 5 MiB minimum.
part1 = bytes((i * 13) % 241 for i in range(5 * 1024 * 1024))
part2 = b"the last part may be short"

for alg, digest in DIGESTS.items():
    member = f"Checksum{alg}"
    want = b64(digest(data))
    key = f"single-{alg}"
    if alg == "SHA512":
        # botocore computes this one itself.
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=alg)
    else:
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=alg, **{member: want})
    assert put.get(member) == want, (alg, put)
    assert put.get("ChecksumType") == "FULL_OBJECT", (alg, put)

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get(member) == want, (alg, head)
    assert head.get("ChecksumType") == "FULL_OBJECT", (alg, head)
    # Without checksum mode, no checksum.
    assert member not in s3.head_object(Bucket=bucket, Key=key), alg

    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    body = got["Body"].read()
    assert body == data, alg
    assert got.get(member) == want, (alg, got)

    # A value that is not the data's: BadDigest, and nothing stored.
    wrong = b64(digest(data + b"!"))
    err = expect_error(
        "BadDigest",
        s3.put_object,
        Bucket=bucket,
        Key=f"bad-{alg}",
        Body=data,
        **{member: wrong},
    )
    assert alg in str(err), (alg, str(err))
    expect_error("404", s3.head_object, Bucket=bucket, Key=f"bad-{alg}")

    attrs = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["Checksum"])
    assert attrs["Checksum"] == {member: want, "ChecksumType": "FULL_OBJECT"}, (alg, attrs)

    # Multipart: COMPOSITE is the default and the only type these algorithms take.
    expect_error(
        "InvalidRequest",
        s3.create_multipart_upload,
        Bucket=bucket,
        Key=f"full-{alg}",
        ChecksumAlgorithm=alg,
        ChecksumType="FULL_OBJECT",
    )
    mkey = f"multi-{alg}"
    up = s3.create_multipart_upload(Bucket=bucket, Key=mkey, ChecksumAlgorithm=alg)
    assert up.get("ChecksumAlgorithm") == alg, (alg, up)
    assert up.get("ChecksumType") == "COMPOSITE", (alg, up)
    uid = up["UploadId"]
    parts = []
    for n, chunk in ((1, part1), (2, part2)):
        value = b64(digest(chunk))
        extra = {} if alg == "SHA512" else {member: value}
        p = s3.upload_part(
            Bucket=bucket,
            Key=mkey,
            UploadId=uid,
            PartNumber=n,
            Body=chunk,
            ChecksumAlgorithm=alg,
            **extra,
        )
        assert p.get(member) == value, (alg, n, p)
        parts.append({"PartNumber": n, "ETag": p["ETag"], member: value})
    listed = s3.list_parts(Bucket=bucket, Key=mkey, UploadId=uid)
    assert listed.get("ChecksumAlgorithm") == alg, (alg, listed)
    assert [p.get(member) for p in listed["Parts"]] == [p[member] for p in parts], (alg, listed)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=mkey, UploadId=uid, MultipartUpload={"Parts": parts}
    )
    composite = b64(digest(digest(part1) + digest(part2))) + "-2"
    assert done.get(member) == composite, (alg, done, composite)
    assert done.get("ChecksumType") == "COMPOSITE", (alg, done)
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key=mkey, ObjectAttributes=["Checksum", "ObjectParts"]
    )
    assert attrs["Checksum"] == {member: composite, "ChecksumType": "COMPOSITE"}, (alg, attrs)
    assert [p.get(member) for p in attrs["ObjectParts"]["Parts"]] == [
        p[member] for p in parts
    ], (alg, attrs)
    head = s3.head_object(Bucket=bucket, Key=mkey, ChecksumMode="ENABLED")
    assert head.get(member) == composite, (alg, head)

    # CopyObject in the algorithm: a full-object value over the copy's bytes.
    copy = s3.copy_object(
        Bucket=bucket,
        Key=f"copy-{alg}",
        CopySource={"Bucket": bucket, "Key": "single-SHA512"},
        ChecksumAlgorithm=alg,
    )
    assert copy["CopyObjectResult"].get(member) == want, (alg, copy)

print("newer checksums ok")
