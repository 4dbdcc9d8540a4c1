"""The kernel interface: the libc binding, /proc and cgroup readers, child processes and the safety guards
around real experiments (machine lock, memory budget, confinement), and the host's environment."""
