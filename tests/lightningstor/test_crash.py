"""kill -9 during concurrent PUTs: after a restart every acknowledged object reads back intact,
and every visible object is complete (one of the bodies a client sent for that key)."""
import hashlib
import os
import threading
import time
import unittest

import lsd


class CrashTest(unittest.TestCase):
    def test_kill9_during_puts(self):
        d = lsd.Daemon()
        try:
            d.start()
            d.client().create_bucket(Bucket="crash")
            acked, attempted = {}, {}
            lock = threading.Lock()
            stop = threading.Event()
            sizes = [4096, 100 * 1024, 1536 * 1024]

            def writer(tid):
                s3 = d.client()
                i = 0
                while not stop.is_set():
                    key = f"t{tid}/{i}"
                    body = os.urandom(sizes[(tid + i) % len(sizes)])
                    digest = hashlib.md5(body).hexdigest()
                    with lock:
                        attempted[key] = digest
                    try:
                        s3.put_object(Bucket="crash", Key=key, Body=body)
                    except Exception:
                        return  # the daemon is gone
                    with lock:
                        acked[key] = digest
                    i += 1

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            time.sleep(2.0)
            d.kill9()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            self.assertGreater(len(acked), 20)

            d.start()
            s3 = d.client()
            for key, digest in acked.items():
                body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
                self.assertEqual(hashlib.md5(body).hexdigest(), digest, key)
            visible = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash"):
                visible += [c["Key"] for c in page.get("Contents", [])]
            self.assertTrue(set(acked) <= set(visible))
            for key in set(visible) - set(acked):
                body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
                self.assertEqual(hashlib.md5(body).hexdigest(), attempted[key], key)
            self.assertEqual(os.listdir(os.path.join(d.data_dir, "tmp")), [])
            print(f"acknowledged {len(acked)}, visible {len(visible)}, attempted {len(attempted)}")
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
