#!/usr/bin/env python3
"""Makes a Node binary smaller to carry: its embedded ICU data keeps only what an English
process uses, and the binary is stripped.

Official Node builds embed full ICU data (33 MB: every locale's names, collations, calendars,
time-zone names, legacy charset converters). The benchmark needs Unicode properties and
normalization (tokenizer regexes), root collation and the time zones, in English. The data is
one ICU "common data" package (a table of contents, then items); this rewrites the package in
place with the kept items only, and fills the rest of its bytes with zeros, which compress to
nothing. An item that was left out reads as missing, and ICU then falls back to the root
locale, as it does for any locale it has no data for.

    python3 bench/e2e/trim_node.py $(command -v node) /tmp/node-trimmed
"""
import re
import shutil
import struct
import subprocess
import sys

KEEP_LOCALES = {'root', 'en', 'en_US', 'en_US_POSIX', 'en_001'}
LOCALE = re.compile(r'^[a-z]{2,3}(_[A-Za-z0-9]+)*$')
# .res files named like locales that are not locales.
NOT_LOCALES = {'pool', 'res_index'}


def keep(name):
    parts = name.split('/')[1:]  # drop 'icudtNNl'
    base = parts[-1]
    stem, _, ext = base.rpartition('.')
    if ext in ('cnv', 'dict'):  # legacy charset converters, word-break dictionaries (Thai, CJK...)
        return False
    if ext != 'res':
        return True  # properties, normalization, collation base, break rules, aliases
    if stem in NOT_LOCALES or not LOCALE.match(stem):
        return True  # supplemental data, zoneinfo64, metaZones, plurals...
    if len(parts) == 2 and parts[0] == 'translit':
        return False
    return stem in KEEP_LOCALES


def symbol(binary, pattern):
    """(file offset, size) of the one symbol matching pattern, from nm and the section table."""
    nm = subprocess.run(['nm', '-S', binary], capture_output=True, text=True).stdout
    found = [line.split() for line in nm.splitlines() if re.search(pattern, line)]
    found = [f for f in found if len(f) == 4]
    if len(found) != 1:
        raise SystemExit(f'trim_node: expected one symbol matching {pattern} in {binary}, found {len(found)} (a stripped binary?)')
    address, size = int(found[0][0], 16), int(found[0][1], 16)
    sections = subprocess.run(['readelf', '-SW', binary], capture_output=True, text=True).stdout
    for line in sections.splitlines():
        m = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)', line)
        if not m or m.group(2) == 'NOBITS':
            continue
        start, offset, length = int(m.group(3), 16), int(m.group(4), 16), int(m.group(5), 16)
        if start <= address and address + size <= start + length:
            return address - start + offset, size
    raise SystemExit('trim_node: the ICU data symbol is in no section')


def rebuild(package):
    header_size = struct.unpack_from('<H', package, 0)[0]
    if package[2:4] != b'\xda\x27' or package[12:16] != b'CmnD':
        raise SystemExit('trim_node: not an ICU common data package')
    toc = header_size
    count = struct.unpack_from('<I', package, toc)[0]
    entries = [struct.unpack_from('<II', package, toc + 4 + 8 * i) for i in range(count)]
    names = []
    for name_offset, _ in entries:
        end = package.index(b'\0', toc + name_offset)
        names.append(package[toc + name_offset:end].decode())
    items = []
    for i, (name, (_, data_offset)) in enumerate(zip(names, entries)):
        end = entries[i + 1][1] if i + 1 < count else len(package) - toc
        if keep(name):
            items.append((name, package[toc + data_offset:toc + end]))
    # New table: count, entries, names, then the items, each 16-byte aligned (as ICU writes them).
    name_blob = b''
    name_offsets = []
    table_size = 4 + 8 * len(items)
    for name, _ in items:
        name_offsets.append(table_size + len(name_blob))
        name_blob += name.encode() + b'\0'
    body = bytearray(struct.pack('<I', len(items)))
    data = bytearray()
    data_start = table_size + len(name_blob)
    data_start += (-data_start) % 16
    for (name, blob), name_offset in zip(items, name_offsets):
        body += struct.pack('<II', name_offset, data_start + len(data))
        data += blob
        data += b'\0' * ((-len(data)) % 16)
    body += name_blob
    body += b'\0' * (data_start - len(body))
    body += data
    out = package[:header_size] + bytes(body)
    return out, count, len(items)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    offset, size = symbol(source, r' icudt\d+_dat$')
    with open(source, 'rb') as f:
        binary = bytearray(f.read())
    package = bytes(binary[offset:offset + size])
    trimmed, before, after = rebuild(package)
    if len(trimmed) > size:
        raise SystemExit('trim_node: the trimmed package is larger than the original')
    binary[offset:offset + size] = trimmed + b'\0' * (size - len(trimmed))
    with open(target + '.tmp', 'wb') as f:
        f.write(binary)
    subprocess.run(['strip', '-o', target, target + '.tmp'], check=True)
    shutil.copymode(source, target)
    subprocess.run(['rm', '-f', target + '.tmp'], check=True)
    print(f'trim_node: ICU data {size / 2**20:.1f} MiB, {before} items -> {len(trimmed) / 2**20:.1f} MiB, {after} items; stripped')


if __name__ == '__main__':
    main()
