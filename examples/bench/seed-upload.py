#!/usr/bin/env python3
"""The seed flow's upload step for scripts/bench: one file to OSS with Alibaba's
official Python SDK v2 (alibabacloud-oss-v2), as the seed's scripts uploaded
their tar.gz: the SDK's uploader (multipart, its default part size and
parallelism), V4 signatures, path-style against the suite's OSS server.

Usage: seed-upload.py ENDPOINT BUCKET REGION KEY FILE
Credentials: env OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET.
"""

import os
import sys

import alibabacloud_oss_v2 as oss


def main():
    endpoint, bucket, region, key, path = sys.argv[1:6]
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"]
    )
    cfg.region = region
    cfg.endpoint = endpoint
    cfg.use_path_style = True
    client = oss.Client(cfg)
    result = client.uploader().upload_file(oss.PutObjectRequest(bucket=bucket, key=key), filepath=path)
    if result.status_code != 200:
        sys.exit(f"seed-upload: {key}: status {result.status_code}")


if __name__ == "__main__":
    main()
