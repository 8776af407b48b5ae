"""The foundation every CNET program shares (the node's processes and the standalone services): nothing
here imports the rest of CNET."""
