"""The checker reads Valkey URLs as the Rust side does: both are held to
ops/testdata/redis-urls.json."""

import json
import unittest
from pathlib import Path

from forex_check import redis_url

VECTORS = Path(__file__).resolve().parents[3] / "ops" / "testdata" / "redis-urls.json"


class RedisUrlVectors(unittest.TestCase):
    def test_every_vector_reads_as_the_rust_side_reads_it(self):
        vectors = json.loads(VECTORS.read_text())["vectors"]
        self.assertGreaterEqual(len(vectors), 10)
        for v in vectors:
            with self.subTest(url=v["url"]):
                parsed = redis_url.parse(v["url"])
                self.assertEqual(redis_url.redact(v["url"]), v["redacted"])
                if not v["valid"]:
                    self.assertIsNone(parsed)
                    continue
                self.assertIsNotNone(parsed)
                self.assertEqual(parsed.address, v["address"])
                self.assertEqual(parsed.host, v["host"])
                self.assertEqual(parsed.port, v["port"])
                self.assertEqual(parsed.tls, v["tls"])
                self.assertNotIn("s3cret", parsed.redacted())


if __name__ == "__main__":
    unittest.main()
