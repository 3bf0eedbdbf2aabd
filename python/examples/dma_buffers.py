# SPDX-License-Identifier: MIT
# %% [markdown]
# # DMA buffers with kheap, the PYNQ way
#
# A notebook in Jupyter's "percent" format: each `# %%` is a cell (open
# it with jupytext, or run it whole with `python3 dma_buffers.py`).
# The buffer code is what a PYNQ notebook writes; only the import
# changes.  No DMA engine is needed: a stand-in below moves bytes
# knowing nothing but physical addresses, as hardware would.

# %%
import ctypes

import numpy as np

import kheap
from kheap import allocate

pool = kheap.stats()
print(f"kheap pool: {pool['pool_size'] >> 20} MiB, "
      f"{pool['pool_free'] >> 20} MiB free")

# %% [markdown]
# ## Two buffers, as for an AXI DMA's send and receive channels

# %%
input_buffer = allocate(shape=(4096,), dtype=np.uint32)
output_buffer = allocate(shape=(4096,), dtype=np.uint32)
input_buffer[:] = np.arange(4096, dtype=np.uint32) * 3
print(f"input  at physical {input_buffer.physical_address:#x}")
print(f"output at physical {output_buffer.physical_address:#x}")


# %% [markdown]
# ## The "device"
#
# A DMA engine is told physical addresses and a length.  This stand-in
# is told the same and finds the bytes through kheap.phys_to_virt().

# %%
def dma_copy(src_phys, dst_phys, nbytes):
    ctypes.memmove(kheap.phys_to_virt(dst_phys), kheap.phys_to_virt(src_phys),
                   nbytes)


# %% [markdown]
# ## A transfer: flush what the CPU wrote, invalidate what the device wrote

# %%
input_buffer.flush()
dma_copy(input_buffer.physical_address, output_buffer.physical_address,
         input_buffer.nbytes)
output_buffer.invalidate()
assert np.array_equal(output_buffer, input_buffer)
print("output == input:", np.array_equal(output_buffer, input_buffer))

# %% [markdown]
# ## Slices keep their addresses
#
# Half a buffer, a row, every other element: each view's address is its
# first element's.

# %%
frame = allocate(shape=(480, 640), dtype=np.uint16)
for name, view in [("frame", frame), ("row 100", frame[100]),
                   ("lower half", frame[240:]), ("column 7", frame[:, 7])]:
    offset = view.physical_address - frame.physical_address
    print(f"{name:>10}: physical {view.physical_address:#x} (+{offset})")
assert frame[240:].physical_address == frame.physical_address + 240 * 640 * 2

# Move the lower half onto the upper half by physical address only.
frame[240:] = 0xBEEF
frame.flush()
dma_copy(frame[240:].physical_address, frame.physical_address,
         frame[240:].nbytes)
frame.invalidate()
assert (frame == 0xBEEF).all()

# %% [markdown]
# ## Giving memory back
#
# `freebuffer()` (or `close()`) returns it at once; `with` does it at the
# end of the block; a buffer nobody refers to any more goes back too.

# %%
with allocate(shape=(1 << 20,), dtype=np.uint8) as scratch:
    scratch[:] = 1
    print(f"scratch: {scratch.nbytes >> 20} MiB at {scratch.physical_address:#x}")
for buf in (input_buffer, output_buffer, frame):
    buf.freebuffer()
st = kheap.stats()
print(f"this process holds {st['bytes_in_use']} bytes in use, "
      f"peak {st['peak_in_use']}")
print("example: done")
