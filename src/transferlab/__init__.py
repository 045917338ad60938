"""transferlab: how transferable are the features of each layer of a deep network?"""

__version__ = "0.1.0"
