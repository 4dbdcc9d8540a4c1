"""`make bench`: the simulator's two figures (1 TiB VMA single simulation; 10,000-point sweep, one core)."""
from mmlab.sim import bench

if __name__ == "__main__":
    bench()
