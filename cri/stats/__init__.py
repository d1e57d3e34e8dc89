"""Resource usage of containers and pods: CRI stats, CRI metrics (cAdvisor names).

    collector = StatsCollector(...)                  # cri.stats.collector
    await collector.container_stats(records)         # [pb.ContainerStats]
    await collector.sandbox_stats(records)           # [pb.PodSandboxStats]
    await collector.sandbox_metrics(records)         # [pb.PodSandboxMetrics]

Everything is read from the kernel at call time (cgroup files, /proc), except the
writable layer's size, which needs a directory walk: that is cached and refreshed in the
background (disk.py).
"""
