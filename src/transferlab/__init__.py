"""transferlab: how transferable are the features of each layer of a deep network?"""

from transferlab.kernels import pin_cpu_kernels

# Before torch computes anything in this process: every process that runs the project's code
# imports this package first, so a run's bytes do not depend on the processor's instruction set.
pin_cpu_kernels()

__version__ = "0.1.0"
