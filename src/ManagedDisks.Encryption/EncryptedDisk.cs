using System.Buffers;
using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Encryption;

/// <summary>
/// A block-device filter that stores every sector AES-256-XTS encrypted at
/// <c>payloadOffset + i * sectorSize</c> of the lower device, with tweak i.
/// A stored sector of all zero bytes is a hole and reads as plaintext zeros (real ciphertext is
/// never all zeros), which keeps TRIM, zeroing and block status honest and sparse.
/// Requests need only 512-byte alignment; partial sectors are read-modify-written under a lock.
/// While the disk is re-encrypted, a <see cref="SectorRouting"/> picks the old or new DEK per
/// sector; without one, every sector uses the one cipher (the hot path is a null check).
/// </summary>
public sealed class EncryptedDisk : IBlockDevice
{
    private const int MaxPayload = 32 * 1024 * 1024;

    private readonly IBlockDevice _lower;
    private XtsSectorCipher _cipher;
    private volatile SectorRouting? _routing; // replaced only while client I/O is paused
    private readonly long _payloadOffset;
    private readonly int _sectorSize;
    private readonly bool _detectZeroes;
    private readonly SectorLocks _locks = new();

    public EncryptedDisk(IBlockDevice lower, XtsSectorCipher cipher, long payloadOffset, long logicalSize, int sectorSize, bool detectZeroes)
    {
        _lower = lower;
        _cipher = cipher;
        _payloadOffset = payloadOffset;
        _sectorSize = sectorSize;
        _detectZeroes = detectZeroes;
        Size = logicalSize;
        var caps = lower.Capabilities;
        Capabilities = caps with
        {
            // Zeroing full sectors is a lower-layer zero (stored zeros read as zeros), so it stays fast.
            CanZero = true,
            MinimumBlockSize = 512,
            PreferredBlockSize = (uint)sectorSize,
            MaximumPayload = Math.Min(caps.MaximumPayload, MaxPayload),
        };
    }

    public BlockDeviceCapabilities Capabilities { get; }
    public long Size { get; }

    /// <summary>The re-encryption of this disk to a new DEK, while one is in progress.</summary>
    public DiskReencryption? Reencryption { get; internal set; }

    internal IBlockDevice Lower => _lower;
    internal long PayloadOffset => _payloadOffset;
    internal int SectorSize => _sectorSize;
    internal XtsSectorCipher Cipher => _cipher;

    /// <summary>Routes sectors between the old and the new DEK; call only while no request runs.</summary>
    internal void Route(SectorRouting routing) => _routing = routing;

    /// <summary>Makes the new DEK the only one and wipes the old; call only while no request runs.</summary>
    internal void FinishReencryption()
    {
        var routing = _routing ?? throw new InvalidOperationException("no re-encryption is in progress");
        _cipher = routing.New;
        _routing = null;
        Reencryption = null;
        routing.Old.Dispose();
    }

    private long AlignDown(long value) => value / _sectorSize * _sectorSize;
    private long AlignUp(long value) => (value + _sectorSize - 1) / _sectorSize * _sectorSize;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        long start = AlignDown(offset), end = AlignUp(offset + buffer.Length);
        if (start == offset && end == offset + buffer.Length)
        {
            await _lower.ReadAsync(_payloadOffset + offset, buffer, cancellationToken).ConfigureAwait(false);
            DecryptInPlace(buffer.Span, offset);
            return;
        }
        byte[] sectors = ArrayPool<byte>.Shared.Rent((int)(end - start));
        try
        {
            var span = sectors.AsMemory(0, (int)(end - start));
            await _lower.ReadAsync(_payloadOffset + start, span, cancellationToken).ConfigureAwait(false);
            DecryptInPlace(span.Span, start);
            span.Span.Slice((int)(offset - start), buffer.Length).CopyTo(buffer.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(sectors, clearArray: true);
        }
    }

    /// <summary>Decrypts runs of stored sectors; all-zero sectors are holes and stay zero.</summary>
    private void DecryptInPlace(Span<byte> data, long offset)
    {
        int sectors = data.Length / _sectorSize;
        int i = 0;
        while (i < sectors)
        {
            if (IsZeroSector(data, i)) { i++; continue; }
            int runStart = i;
            while (i < sectors && !IsZeroSector(data, i)) i++;
            var run = data.Slice(runStart * _sectorSize, (i - runStart) * _sectorSize);
            DecryptRun(run, offset / _sectorSize + runStart);
        }
    }

    private void DecryptRun(Span<byte> run, long firstSector)
    {
        if (_routing is { } routing) routing.Decrypt(run, firstSector, _sectorSize);
        else _cipher.Decrypt(run, run, (ulong)firstSector, _sectorSize);
    }

    private void EncryptRun(Span<byte> run, long firstSector)
    {
        if (_routing is { } routing) routing.Encrypt(run, firstSector, _sectorSize);
        else _cipher.Encrypt(run, run, (ulong)firstSector, _sectorSize);
    }

    private bool IsZeroSector(ReadOnlySpan<byte> data, int sector) =>
        data.Slice(sector * _sectorSize, _sectorSize).IndexOfAnyExcept((byte)0) < 0;

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default)
    {
        long start = AlignDown(offset), end = AlignUp(offset + data.Length);
        using var _ = await _locks.LockAsync(start, end - start).ConfigureAwait(false);
        byte[] sectors = ArrayPool<byte>.Shared.Rent((int)(end - start));
        try
        {
            var plain = sectors.AsMemory(0, (int)(end - start));
            if (start != offset || end != offset + data.Length)
            {
                // Read-modify-write: the untouched bytes of the edge sectors must survive.
                await _lower.ReadAsync(_payloadOffset + start, plain, cancellationToken).ConfigureAwait(false);
                DecryptInPlace(plain.Span, start);
            }
            data.Span.CopyTo(plain.Span[(int)(offset - start)..]);
            await StoreAsync(start, plain, options, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(sectors, clearArray: true);
        }
    }

    /// <summary>Encrypts whole sectors in place and writes them; with detect_zeroes, zero sectors become holes.</summary>
    private async ValueTask StoreAsync(long start, Memory<byte> plain, WriteOptions options, CancellationToken cancellationToken)
    {
        if (!_detectZeroes)
        {
            EncryptRun(plain.Span, start / _sectorSize);
            await _lower.WriteAsync(_payloadOffset + start, plain, options, cancellationToken).ConfigureAwait(false);
            return;
        }
        int sectors = plain.Length / _sectorSize;
        int i = 0;
        while (i < sectors)
        {
            bool zero = IsZeroSector(plain.Span, i);
            int runStart = i;
            while (i < sectors && IsZeroSector(plain.Span, i) == zero) i++;
            long runOffset = start + (long)runStart * _sectorSize;
            var run = plain.Slice(runStart * _sectorSize, (i - runStart) * _sectorSize);
            if (zero)
            {
                await _lower.ZeroAsync(_payloadOffset + runOffset, run.Length, (options & WriteOptions.Fua) != 0 ? ZeroOptions.Fua : ZeroOptions.None, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                EncryptRun(run.Span, runOffset / _sectorSize);
                await _lower.WriteAsync(_payloadOffset + runOffset, run, options, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => _lower.FlushAsync(cancellationToken);

    public async ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default)
    {
        // TRIM is a hint: only whole sectors can be discarded, so the range is rounded inwards.
        long start = AlignUp(offset), end = AlignDown(offset + length);
        if (end <= start || !_lower.Capabilities.CanTrim) return;
        using var _ = await _locks.LockAsync(start, end - start).ConfigureAwait(false);
        await _lower.TrimAsync(_payloadOffset + start, end - start, options, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default)
    {
        long innerStart = AlignUp(offset), innerEnd = AlignDown(offset + length);
        bool partialEdges = innerStart != offset || innerEnd != offset + length;
        if (partialEdges && (options & ZeroOptions.FastOnly) != 0)
            throw new BlockDeviceException(DeviceError.NotSupported, "zeroing part of a sector needs a read-modify-write, which is not fast");

        if (innerEnd > innerStart)
        {
            using var _ = await _locks.LockAsync(innerStart, innerEnd - innerStart).ConfigureAwait(false);
            await _lower.ZeroAsync(_payloadOffset + innerStart, innerEnd - innerStart, options, cancellationToken).ConfigureAwait(false);
        }
        var writeOptions = (options & ZeroOptions.Fua) != 0 ? WriteOptions.Fua : WriteOptions.None;
        if (innerStart > offset || innerEnd < innerStart)
        {
            long headEnd = Math.Min(innerStart, offset + length);
            await WriteAsync(offset, new byte[headEnd - offset], writeOptions, cancellationToken).ConfigureAwait(false);
        }
        if (innerEnd < offset + length && innerEnd >= innerStart)
            await WriteAsync(innerEnd, new byte[offset + length - innerEnd], writeOptions, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) =>
        _lower.CacheAsync(_payloadOffset + offset, length, cancellationToken);

    public async ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        var lower = await _lower.GetExtentsAsync(_payloadOffset + offset, length, cancellationToken).ConfigureAwait(false);
        return lower.Select(e => e with { Offset = e.Offset - _payloadOffset }).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        if (Reencryption is { } reencryption) await reencryption.StopAsync().ConfigureAwait(false);
        _routing?.New.Dispose();
        _cipher.Dispose();
        await _lower.DisposeAsync().ConfigureAwait(false);
    }
}
