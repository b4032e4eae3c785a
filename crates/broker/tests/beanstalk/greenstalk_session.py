"""greenstalk (PyPI) against the broker's beanstalkd port: argv = host port.

Every step asserts on what the server answered; the Rust test checks the final "ok".
"""
import sys

import greenstalk

addr = (sys.argv[1], int(sys.argv[2]))

with greenstalk.Client(addr, use="gs", watch="gs") as c:
    first = c.put("hello", ttr=30)
    job = c.reserve(timeout=1)
    assert (job.id, job.body) == (first, "hello"), job
    assert c.stats_job(job)["state"] == "reserved"
    c.touch(job)
    c.delete(job)

    # A poison job: buried, seen as buried, kicked back, then done.
    poison = c.put("poison", priority=5)
    job = c.reserve(timeout=1)
    c.bury(job)
    assert c.stats_job(poison)["state"] == "buried"
    assert c.peek_buried().id == poison
    assert c.stats_tube("gs")["current-jobs-buried"] == 1
    assert c.kick(10) == 1
    job = c.reserve(timeout=1)
    assert job.id == poison
    c.release(job, priority=1)
    job = c.reserve(timeout=1)
    assert job.id == poison
    c.delete(job)

    # Delayed, then kicked early with kick-job.
    later = c.put("later", delay=3600)
    assert c.peek_delayed().id == later
    c.kick_job(later)
    assert c.reserve(timeout=1).id == later
    try:
        c.reserve(timeout=0)
        raise AssertionError("reserve on an empty tube returned a job")
    except greenstalk.TimedOutError:
        pass
    try:
        c.delete(999999)
        raise AssertionError("delete of a job that does not exist succeeded")
    except greenstalk.NotFoundError:
        pass
    assert "gs" in c.tubes()
    assert c.stats()["current-jobs-reserved"] >= 1

# A worker that stops mid-job (its connection open, never deleting): after the TTR the
# job is reserved again by another worker.
with greenstalk.Client(addr, use="ttr", watch="ttr") as stalled, greenstalk.Client(
    addr, watch="ttr"
) as other:
    stalled.put("slow", ttr=1)
    job = stalled.reserve(timeout=1)
    again = other.reserve(timeout=10)
    assert again.id == job.id and again.body == "slow"
    assert other.stats_job(again)["reserves"] == 2
    other.delete(again)

print("ok")
