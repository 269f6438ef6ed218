#!/usr/bin/env python3
"""Drives an OSS endpoint with Alibaba's official Python SDK v2 (alibabacloud-oss-v2,
V4 signatures by default) to prove the suite's OSS server verifies requests as OSS does,
then reads objects that mb-oss-put stored there and checks their CRC-64.

Usage: oss_sdk_check.py ENDPOINT BUCKET REGION [KEY:SIZE:CRC64 ...]
Credentials: env OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET.
Prints one line per check; exits 1 on the first failure.
"""

import os
import sys
import tempfile

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2.crc import Crc64

ODD_KEYS = [
    "odd/a b.txt",
    "odd/unicod\u00e9/\u4e2d\u6587.bin",
    "odd/plus+sign",
    "odd/100%done",
    "odd/what?yes",
    "odd/a=b&c=d",
    "odd/mix ?=&+%~/x",
]


def client(endpoint, region, key_id, secret, attempts=3):
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(key_id, secret)
    cfg.region = region
    cfg.endpoint = endpoint
    cfg.use_path_style = True
    cfg.retry_max_attempts = attempts
    return oss.Client(cfg)


def crc64(data):
    crc = Crc64(0)
    crc.update(data)
    return crc.sum64()


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def expect_error(call, needle, what):
    try:
        call()
    except Exception as err:  # the SDK wraps service errors in OperationError
        check(needle in str(err), f"{what} ({needle})")
        return
    check(False, f"{what}: the request succeeded")


def main():
    endpoint, bucket, region = sys.argv[1:4]
    key_id, secret = os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"]
    c = client(endpoint, region, key_id, secret)

    for i, key in enumerate(ODD_KEYS):
        data = f"object {i} under {key!r}".encode() * (i + 1)
        put = c.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))
        check(int(put.hash_crc64) == crc64(data), f"put {key!r}: CRC-64 answered")
        got = c.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
        check(got.body.read() == data, f"get {key!r}")
        part = c.get_object(oss.GetObjectRequest(bucket=bucket, key=key, range_header="bytes=3-9",
                                                 range_behavior="standard"))
        check(part.body.read() == data[3:10], f"range get {key!r}")
        head = c.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        check(head.content_length == len(data), f"head {key!r}")

    listed = c.list_objects(oss.ListObjectsRequest(bucket=bucket, prefix="odd/"))
    names = sorted(o.key for o in (listed.contents or []))
    check(names == sorted(ODD_KEYS), f"list odd/: {len(names)} keys, names exact")

    key = "odd/multi part+%?.bin"
    first, second = os.urandom(200 * 1024), os.urandom(1234)
    init = c.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=bucket, key=key))
    parts = []
    for number, body in ((1, first), (2, second)):
        up = c.upload_part(oss.UploadPartRequest(bucket=bucket, key=key, upload_id=init.upload_id,
                                                 part_number=number, body=body))
        parts.append(oss.UploadPart(part_number=number, etag=up.etag))
    c.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=bucket, key=key, upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts)))
    got = c.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    check(got.body.read() == first + second, "multipart upload round trip")
    check(int(got.hash_crc64) == crc64(first + second), "multipart CRC-64")

    wrong_secret = client(endpoint, region, key_id, secret + "x", attempts=1)
    expect_error(lambda: wrong_secret.get_object(oss.GetObjectRequest(bucket=bucket, key=ODD_KEYS[0])),
                 "SignatureDoesNotMatch", "a wrong secret is refused")
    wrong_region = client(endpoint, "cn-beijing", key_id, secret, attempts=1)
    expect_error(lambda: wrong_region.get_object(oss.GetObjectRequest(bucket=bucket, key=ODD_KEYS[0])),
                 "Invalid signing region", "a wrong region is refused")

    with tempfile.TemporaryDirectory() as tmp:
        for spec in sys.argv[4:]:
            key, size, crc = spec.rsplit(":", 2)
            path = os.path.join(tmp, "object")
            # get_object_to_file checks the body against x-oss-hash-crc64ecma itself.
            got = c.get_object_to_file(oss.GetObjectRequest(bucket=bucket, key=key), path)
            check(int(got.hash_crc64) == int(crc), f"mb object {key!r}: CRC-64 {crc}")
            check(os.path.getsize(path) == int(size), f"mb object {key!r}: {size} bytes")
            with open(path, "rb") as f:
                check(crc64(f.read()) == int(crc), f"mb object {key!r}: bytes match the CRC-64")
    print("oss_sdk_check: all checks passed")


if __name__ == "__main__":
    main()
