"""kill -9 during concurrent PUTs: after a restart every acknowledged object reads back intact,
and every visible object is complete (one of the bodies a client sent for that key). kill -9
during writes of locked versions and attempts to delete or unlock them: no lock acknowledged
before the kill is lost, and none of the attempts ever succeeds, before or after it."""
import datetime
import hashlib
import os
import threading
import time
import unittest

from botocore.exceptions import ClientError

import lsd


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


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

    def test_kill9_never_unlocks(self):
        d = lsd.Daemon()
        try:
            d.start()
            d.client().create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
            until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
            later = until + datetime.timedelta(days=1)
            locked = {}  # (key, version) -> (md5, mode, until acknowledged, legal hold)
            violations = []
            lock = threading.Lock()
            stop = threading.Event()

            def writer(tid):
                s3 = d.client()
                i = 0
                while not stop.is_set():
                    key, body = f"t{tid}/{i}", os.urandom(2048 + i)
                    governance = i % 2 == 1  # with a legal hold, so even the bypass fails
                    extra = {"ObjectLockLegalHoldStatus": "ON"} if governance else {}
                    try:
                        v = s3.put_object(Bucket="worm", Key=key, Body=body, ObjectLockRetainUntilDate=until,
                                          ObjectLockMode="GOVERNANCE" if governance else "COMPLIANCE",
                                          **extra)["VersionId"]
                        with lock:
                            locked[(key, v)] = (hashlib.md5(body).hexdigest(),
                                                "GOVERNANCE" if governance else "COMPLIANCE", until, governance)
                        if i % 3 == 0:  # lengthened: the longer retention must be what survives
                            s3.put_object_retention(Bucket="worm", Key=key, VersionId=v, Retention={
                                "Mode": "GOVERNANCE" if governance else "COMPLIANCE", "RetainUntilDate": later})
                            with lock:
                                locked[(key, v)] = locked[(key, v)][:2] + (later, governance)
                    except Exception:
                        return  # the daemon is gone
                    i += 1

            def attacker():
                s3 = d.client()
                while not stop.is_set():
                    with lock:
                        targets = list(locked)[-8:]
                        modes = [locked[t][1] for t in targets]
                    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
                    try:
                        for (key, v), mode in zip(targets, modes):
                            calls = [lambda: s3.delete_object(Bucket="worm", Key=key, VersionId=v,
                                                              BypassGovernanceRetention=True)]
                            if mode == "COMPLIANCE":  # never shortened, not even with the bypass
                                calls.append(lambda: s3.put_object_retention(
                                    Bucket="worm", Key=key, VersionId=v, BypassGovernanceRetention=True,
                                    Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon}))
                            for call in calls:
                                try:
                                    call()
                                    violations.append((key, v))
                                except ClientError:
                                    pass
                        if targets:
                            r = s3.delete_objects(Bucket="worm", BypassGovernanceRetention=True, Delete={
                                "Objects": [{"Key": k, "VersionId": v} for k, v in targets]})
                            violations.extend((x["Key"], x["VersionId"]) for x in r.get("Deleted", []))
                    except Exception:
                        return  # the daemon is gone

            threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
            threads += [threading.Thread(target=attacker) for _ in range(2)]
            for t in threads:
                t.start()
            # Killed mid-operation: once enough locks are acknowledged, while all keep going.
            self.assertTrue(wait_for(lambda: len(locked) >= 60, timeout=60))
            d.kill9()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            self.assertEqual(violations, [])

            d.start()
            s3 = d.client()
            for (key, v), (digest, mode, retained, hold) in locked.items():
                head = s3.head_object(Bucket="worm", Key=key, VersionId=v)
                self.assertEqual(head["ObjectLockMode"], mode, key)
                self.assertGreaterEqual(head["ObjectLockRetainUntilDate"].replace(microsecond=0),
                                        retained.replace(microsecond=0), key)
                self.assertEqual(head.get("ObjectLockLegalHoldStatus") == "ON", hold, key)
                body = s3.get_object(Bucket="worm", Key=key, VersionId=v)["Body"].read()
                self.assertEqual(hashlib.md5(body).hexdigest(), digest, key)
                with self.assertRaises(ClientError) as e:
                    s3.delete_object(Bucket="worm", Key=key, VersionId=v, BypassGovernanceRetention=True)
                self.assertEqual(e.exception.response["Error"]["Code"], "AccessDenied", key)
            print(f"locked versions acknowledged before the kill: {len(locked)}")
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
