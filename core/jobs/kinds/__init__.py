"""One module per job type. Each module holds:

- ``TYPE`` (the job's ``type``) and ``QUEUE`` (``cpu`` or ``gpu``);
- ``Spec``, the pydantic spec of a request, and ``Request``, its ``{"type", "spec"}`` body;
- ``check(session, spec, sub)``: everything submission validates, before anything is stored;
- ``plan(session, job, spec)``: the jobs it creates with it and the jobs it waits for
  (``core.jobs.lifecycle.depend``); returns the created ones (most kinds create none);
- ``run(ctx, spec)``: the work, safe to run twice; returns the job's result.

``core.jobs.registry`` lists them; see docs/architecture.md for how to add one.
"""
