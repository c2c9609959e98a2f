"""The Dask end-to-end scenario, run as its own program by test_dask.py.

A LocalCluster of worker processes must be started from a real ``__main__`` (its workers are spawned and
re-import it); inside pytest's process the cluster start proved unreliable. Prints one JSON document of
facts for the test to check. Usage: ``python dask_scenario.py EMULATOR_DIR ROOT``.
"""

from __future__ import annotations

import json
import os
import sys


def main(emulator_dir: str, root: str) -> None:
    os.environ["KEYLESS_EMULATOR"] = emulator_dir
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    from keyless.files.dask_copy import copy_tree_on_dask
    from keyless.files.parts import PART_SUFFIX
    from keyless.fsspec import AzureFilesFileSystem

    facts: dict[str, object] = {}
    azfs = AzureFilesFileSystem(account_name="devaccount", skip_instance_cache=True)
    url = f"azfiles://devaccount/{root}"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as client:
        # Workers authenticate themselves: they read with the shipped filesystem, which carries no token.
        azfs.pipe_file(f"{root}/w.txt", b"abc")
        pids = client.run(os.getpid)
        facts["worker_pids"] = sorted(pids.values())
        facts["client_pid"] = os.getpid()
        facts["worker_reads"] = [
            client.submit(azfs.cat_file, f"{root}/w.txt", workers=[w], pure=False).result().decode()
            for w in pids
        ]
        facts["worker_identities"] = [
            client.submit(azfs.whoami, workers=[w], pure=False).result() for w in pids
        ]

        frame = pd.DataFrame({"k": [i % 7 for i in range(3000)], "v": [float(i) for i in range(3000)]})
        for i in range(3):
            frame.iloc[i * 1000 : (i + 1) * 1000].to_csv(f"{url}/csv/part-{i}.csv", index=False)
        ddf = dd.read_csv(f"{url}/csv/*.csv")
        facts["csv_partitions"] = ddf.npartitions
        facts["csv_sum"] = float(ddf.v.sum().compute())
        ddf.to_parquet(f"{url}/pq", engine="pyarrow", write_index=False)
        back = dd.read_parquet(f"{url}/pq", engine="pyarrow").compute()
        back = back.sort_values("v").reset_index(drop=True)
        facts["parquet_equal"] = bool(back.astype(frame.dtypes).equals(frame))
        counts = dd.read_parquet(f"azfiles://{root}/pq", storage_options={"account_name": "devaccount"})
        facts["parquet_count"] = int(counts.groupby("k").v.count().compute().sum())

        files = {f"{root}/src/d{i % 4}/f{i}.txt": f"file {i}".encode() * (i + 1) for i in range(60)}
        azfs.pipe(files)
        fs = AzureFilesFileSystem(skip_instance_cache=True)
        src, dst = f"devaccount/{root}/src", f"devaccount/{root}/dst"
        seen: list[int] = []
        first = copy_tree_on_dask(fs, src, dst, client, batch_files=10,
                                  progress=lambda r: seen.append(r.files))
        facts["first"] = first.to_json()
        facts["progress"] = seen
        facts["copied_equal"] = all(azfs.cat_file(p.replace("/src/", "/dst/")) == d for p, d in files.items())
        # An interrupted run: files lost, one half-written temporary, one source changed since.
        azfs.rm([f"{root}/dst/d0/f0.txt", f"{root}/dst/d1/f5.txt"])
        azfs.pipe_file(f"{root}/dst/d2/.f6.txt.dead{PART_SUFFIX}", b"partial")
        azfs.pipe_file(f"{root}/src/d3/f7.txt", b"changed since")
        second = copy_tree_on_dask(fs, src, dst, cluster.scheduler_address, batch_files=10)
        facts["second"] = second.to_json()
        facts["restored"] = azfs.cat_file(f"{root}/dst/d0/f0.txt") == files[f"{root}/src/d0/f0.txt"]
        facts["changed"] = azfs.cat_file(f"{root}/dst/d3/f7.txt").decode()
    cluster.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
