using System.Buffers;
using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Encryption.Reencryption;

/// <summary>
/// Moves an <see cref="EncryptedDisk"/>'s data to a new DEK, one chunk at a time, while clients
/// keep using the disk (as LUKS2 online re-encryption with checksum resilience does). Each step
/// holds client I/O for one chunk: it records the chunk's stored sectors' hashes in the header
/// (which also commits the previous chunk by moving the watermark), writes the chunk's new
/// ciphertext, syncs, and routes the chunk to the new DEK. A crash at any point leaves a header
/// whose rule (<see cref="SectorRouting"/>) names the right DEK for every stored sector, and
/// the next step after reopening finishes the recorded chunk from those hashes.
/// The caller owns the header: it passes the current one in and keeps what comes back.
/// </summary>
public sealed class DiskReencryption
{
    public const int DefaultChunkSize = 1 << 20;

    private readonly EncryptedDisk _disk;
    private readonly XtsSectorCipher _newCipher;
    private long _watermark;
    private byte[] _recordedHashes; // the chunk a crashed run recorded: finish it from these
    private readonly SemaphoreSlim _step = new(1, 1);
    private bool _stopped;
    private bool _finished;

    private DiskReencryption(EncryptedDisk disk, XtsSectorCipher newCipher, ReencryptionState state)
    {
        _disk = disk;
        _newCipher = newCipher;
        _watermark = state.Watermark;
        _recordedHashes = state.ChunkHashes;
    }

    /// <summary>A header object for a re-encryption that has not converted anything yet.</summary>
    public static ReencryptionState Plan(KeyDigest newDigest, IReadOnlyList<KeySlot> newSlots, int chunkSize = DefaultChunkSize) => new()
    {
        Digest = newDigest,
        KeySlots = newSlots,
        Watermark = 0,
        ChunkSize = chunkSize,
        Started = DateTimeOffset.UtcNow,
    };

    /// <summary>
    /// Routes <paramref name="disk"/>'s sectors as <paramref name="state"/> (the header's record)
    /// says, from now on; the disk takes ownership of <paramref name="newCipher"/>. Call before
    /// clients use the disk, or while none does.
    /// </summary>
    /// <exception cref="InvalidOperationException">A re-encryption is already attached.</exception>
    public static DiskReencryption Attach(EncryptedDisk disk, XtsSectorCipher newCipher, ReencryptionState state)
    {
        if (disk.Reencryption is not null) throw new InvalidOperationException("the disk is already being re-encrypted");
        var reencryption = new DiskReencryption(disk, newCipher, state);
        disk.Route(new SectorRouting(disk.Cipher, newCipher, state.Watermark / disk.SectorSize, state.ChunkHashes));
        disk.Reencryption = reencryption;
        return reencryption;
    }

    /// <summary>Bytes from the start of the disk that are under the new DEK, durably.</summary>
    public long Watermark => Interlocked.Read(ref _watermark);

    public long Size => _disk.Size;

    /// <summary>Whether the header now names the new DEK alone (the last step wrote it).</summary>
    public bool IsComplete => Volatile.Read(ref _finished);

    /// <summary>
    /// Converts the next chunk with client I/O held at <paramref name="gate"/>; after the last
    /// one, writes the header with the new DEK's digest and slots only and wipes the old DEK.
    /// </summary>
    /// <param name="header">The disk's current header (it carries the re-encryption record).</param>
    /// <param name="sequence">Its sequence number; each header write uses the next.</param>
    /// <returns>The header now on disk and its sequence number.</returns>
    /// <exception cref="BlockDeviceException">The gate is closed, or the backing file failed.</exception>
    public async Task<(DiskHeader Header, ulong Sequence)> ConvertNextChunkAsync(GatedDevice gate, DiskHeader header, ulong sequence,
        CancellationToken cancellationToken = default)
    {
        var state = header.Reencryption ?? throw new InvalidOperationException("the header records no re-encryption");
        if (IsComplete) throw new InvalidOperationException("the re-encryption is complete");
        await _step.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_stopped) throw new BlockDeviceException(DeviceError.InputOutput, "the disk is closed");
            await using var pause = await gate.PauseAsync(cancellationToken).ConfigureAwait(false);
            // Closed while the pause waited for requests to drain: leave the disk as it is.
            if (gate.ClosedReason is { } reason) throw new BlockDeviceException(DeviceError.InputOutput, reason);
            return await ConvertChunkAsync(state, header, sequence, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _step.Release();
        }
    }

    /// <summary>
    /// Waits for a step in progress to finish and refuses further ones: the disk is being closed
    /// (the gate's close does not wait for a pause holder, but the ciphers must outlive the step).
    /// </summary>
    internal async ValueTask StopAsync()
    {
        await _step.WaitAsync().ConfigureAwait(false);
        _stopped = true;
        _step.Release();
    }

    private async Task<(DiskHeader Header, ulong Sequence)> ConvertChunkAsync(ReencryptionState state, DiskHeader header, ulong sequence,
        CancellationToken cancellationToken)
    {
        if (_watermark >= Size) return await FinishAsync(state, header, sequence).ConfigureAwait(false);
        int sectorSize = _disk.SectorSize;
        long start = _watermark;
        bool resuming = _recordedHashes.Length > 0;
        int length = resuming
            ? _recordedHashes.Length / ReencryptionState.HashLength * sectorSize
            : (int)Math.Min(state.ChunkSize, Size - start);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var stored = buffer.AsMemory(0, length);
            await _disk.Lower.ReadAsync(_disk.PayloadOffset + start, stored, cancellationToken).ConfigureAwait(false);
            byte[] hashes = _recordedHashes;
            if (!resuming)
            {
                // Recorded before any sector changes; this write also commits the previous chunk.
                hashes = SectorHashes.Record(stored.Span, sectorSize);
                header = header with { Reencryption = state with { Watermark = start, ChunkHashes = hashes } };
                await DiskContainer.WriteAsync(_disk.Lower, header, ++sequence).ConfigureAwait(false);
            }
            try
            {
                await ConvertAsync(stored, start, hashes, cancellationToken).ConfigureAwait(false);
                await _disk.Lower.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // Some sectors may be converted: route by the header's record, as a reader after a crash would, and finish from it next time.
                _recordedHashes = hashes;
                _disk.Route(new SectorRouting(_disk.Cipher, _newCipher, start / sectorSize, hashes));
                throw;
            }
            Interlocked.Exchange(ref _watermark, start + length);
            _recordedHashes = [];
            _disk.Route(new SectorRouting(_disk.Cipher, _newCipher, (start + length) / sectorSize, []));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true); // it held plaintext
        }
        return _watermark >= Size ? await FinishAsync(state, header, sequence).ConfigureAwait(false) : (header, sequence);
    }

    /// <summary>Every sector is under the new DEK: the header names only it, and the old DEK is wiped.</summary>
    private async Task<(DiskHeader Header, ulong Sequence)> FinishAsync(ReencryptionState state, DiskHeader header, ulong sequence)
    {
        header = header with { Digest = state.Digest, KeySlots = state.KeySlots, Reencryption = null };
        await DiskContainer.WriteAsync(_disk.Lower, header, ++sequence).ConfigureAwait(false);
        _disk.FinishReencryption();
        _finished = true;
        return (header, sequence);
    }

    /// <summary>
    /// Re-encrypts, in runs, the sectors that still hold the old ciphertext (the recorded hash
    /// matches) and writes them back; holes, and sectors a client rewrote since, stay as they are.
    /// </summary>
    private async Task ConvertAsync(Memory<byte> stored, long start, byte[] hashes, CancellationToken cancellationToken)
    {
        int sectorSize = _disk.SectorSize;
        int sectors = stored.Length / sectorSize;
        bool StillOld(int i)
        {
            var sector = stored.Span.Slice(i * sectorSize, sectorSize);
            return !SectorHashes.IsHole(sector)
                   && SectorHashes.Matches(sector, hashes.AsSpan(i * ReencryptionState.HashLength, ReencryptionState.HashLength));
        }

        int at = 0;
        while (at < sectors)
        {
            if (!StillOld(at)) { at++; continue; }
            int runStart = at;
            while (at < sectors && StillOld(at)) at++;
            var run = stored.Slice(runStart * sectorSize, (at - runStart) * sectorSize);
            ulong firstSector = (ulong)((start / sectorSize) + runStart);
            _disk.Cipher.Decrypt(run.Span, run.Span, firstSector, sectorSize);
            _newCipher.Encrypt(run.Span, run.Span, firstSector, sectorSize);
            await _disk.Lower.WriteAsync(_disk.PayloadOffset + start + (long)runStart * sectorSize, run, WriteOptions.None, cancellationToken).ConfigureAwait(false);
        }
    }
}
