"""The batch job on Ray Data (``degarble batch ... --engine ray``): beyond one machine.

Needs the optional extra: ``pip install 'degarble[ray]'``. Imported only when the Ray engine runs.

The job is the same as the local engine's (:mod:`degarble.batch`), with the same chunks, the same
part files and therefore the same resumability and exactly-once result; only where chunks run
changes:

* **read**: a Ray Data datasource streams the input with degarble's own reader (so bad records are
  handled the same way) and yields one row per chunk. It runs on the driver's node (the input only
  has to be readable there); parsing is far cheaper than the model, so one reader keeps a cluster
  busy.
* **map_batches**: a pool of ``workers`` actors (one CPU each), each loading the model once and
  turning chunks into part files with :class:`degarble.batch.ChunkRunner`, the code the local
  workers run.
* **write**: the driver receives each part as it is made and writes it atomically to the state
  folder, then builds the final output as the local engine does. Ray Data's streaming executor
  applies back-pressure, so memory stays bounded.

``ray_address`` is a running cluster (``ray://host:10001`` or ``host:6379``, or ``auto``); without
one, a local cluster is started for the job (or the one this process already joined is used).
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable

from .batch import ChunkRunner, ReaderSpec, WorkerSpec, _set_threads, iter_chunks


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        from .batch import BatchError

        raise BatchError("the Ray engine needs Ray Data: pip install 'degarble[ray]'") from e
    return ray


def _make_datasource(rspec: ReaderSpec, done: frozenset[int]):
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ChunkDatasource(Datasource):
        """One read task streaming the input; each block is one chunk (index + pickled records)."""

        def get_name(self) -> str:
            return "DegarbleChunks"

        def estimate_inmemory_data_size(self):
            return None

        @property
        def supports_distributed_reads(self) -> bool:
            return False  # read where the driver is: the input need not be on every node

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            def read():
                for chunk in iter_chunks(rspec, done):
                    yield pa.table({"chunk": [chunk.index], "payload": [pickle.dumps(chunk, protocol=5)]})

            # BlockMetadata's fields changed across Ray versions: fill whichever exist with None.
            meta = BlockMetadata(**{f.name: None for f in dataclasses.fields(BlockMetadata)})
            return [ReadTask(read, meta)]

    return ChunkDatasource()


class _ChunkActor:
    """A Ray actor: loads the model once, then turns chunk rows into part rows."""

    def __init__(self, wspec: WorkerSpec):
        _set_threads(wspec.threads, wspec.task)
        self.runner = ChunkRunner(wspec)

    def __call__(self, batch):
        import pyarrow as pa

        chunks = batch.column("chunk").to_pylist()
        payloads = batch.column("payload").to_pylist()
        parts = [self.runner.run(pickle.loads(p)) for p in payloads]
        return pa.table({"chunk": chunks, "part": parts})


def run_chunks_ray(
    rspec: ReaderSpec,
    wspec: WorkerSpec,
    done: frozenset[int],
    workers: int,
    ray_address: str | None,
    on_part: Callable[[int, bytes], None],
) -> None:
    """Run every chunk not in ``done`` on Ray; call ``on_part(index, part_bytes)`` for each result."""
    ray = _ray()
    if not ray.is_initialized():
        kwargs = {"address": ray_address} if ray_address else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # degarble shows its own
    # Ray Data merges the reader's one-chunk tables into blocks of up to 128 MiB by default, so a
    # small archive became one block and ran on one actor; a small block size hands chunks out
    # to every actor in the pool.
    ctx.target_max_block_size = 1 << 20
    # The reader asks for no CPU: the actor pool takes ``workers`` CPUs, and on a cluster with no
    # more CPUs than that (a 2-core machine running 2 workers) a reader that needs one would wait
    # for a free CPU forever while the actors wait for its chunks. Parsing is cheap next to the model.
    ds = ray.data.read_datasource(_make_datasource(rspec, done), override_num_blocks=1, num_cpus=0)
    # one thread per actor: each actor has one CPU, and the pool is the parallelism
    actor_spec = dataclasses.replace(wspec, threads=1)
    ds = ds.map_batches(
        _ChunkActor,
        fn_constructor_kwargs={"wspec": actor_spec},
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for row in ds.iter_rows():
        on_part(int(row["chunk"]), bytes(row["part"]))
