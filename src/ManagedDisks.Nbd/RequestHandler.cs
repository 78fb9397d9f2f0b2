using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Nbd;

/// <summary>Runs one validated request against the device and sends its reply.</summary>
internal sealed class RequestHandler(IBlockDevice device, ReplyChannel output, bool structuredReplies, string export, ILogger logger)
{
    // Below this, probing for holes costs more (two lseeks) than sending the zeros.
    private const int HoleProbeThreshold = 64 * 1024;

    public async ValueTask HandleAsync(NbdRequest request, ReadOnlyMemory<byte> data, bool flush = true)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var outcome = NbdError.None;
        try
        {
            switch (request.Command)
            {
                case NbdCommand.Read:
                    if (!await ReadAsync(request, flush).ConfigureAwait(false)) outcome = NbdError.Io;
                    return;
                case NbdCommand.Write:
                    await device.WriteAsync((long)request.Offset, data, WriteOptionsOf(request)).ConfigureAwait(false);
                    break;
                case NbdCommand.Flush:
                    await device.FlushAsync().ConfigureAwait(false);
                    break;
                case NbdCommand.Trim:
                    await device.TrimAsync((long)request.Offset, request.Length, WriteOptionsOf(request)).ConfigureAwait(false);
                    break;
                case NbdCommand.WriteZeroes:
                    await device.ZeroAsync((long)request.Offset, request.Length, ZeroOptionsOf(request)).ConfigureAwait(false);
                    break;
                case NbdCommand.Cache:
                    await device.CacheAsync((long)request.Offset, request.Length).ConfigureAwait(false);
                    break;
                case NbdCommand.BlockStatus:
                    await BlockStatusAsync(request, flush).ConfigureAwait(false);
                    return;
            }
            await SendSimpleAsync(request.Cookie, NbdError.None, flush).ConfigureAwait(false);
        }
        catch (BlockDeviceException e)
        {
            NbdLog.DeviceFailed(logger, request.Command, request.Offset, request.Length, e.Error, e.Message);
            outcome = ErrorMapping.ToWire(e.Error);
            await SendErrorAsync(request, outcome, e.Message).ConfigureAwait(false);
        }
        finally
        {
            NbdMetrics.RequestDone(export, request.Command, request.Length, start, outcome);
        }
    }

    private static WriteOptions WriteOptionsOf(in NbdRequest r) => r.Has(CommandFlags.Fua) ? WriteOptions.Fua : WriteOptions.None;

    private static ZeroOptions ZeroOptionsOf(in NbdRequest r) =>
        (r.Has(CommandFlags.Fua) ? ZeroOptions.Fua : 0)
        | (r.Has(CommandFlags.NoHole) ? ZeroOptions.NoHole : 0)
        | (r.Has(CommandFlags.FastZero) ? ZeroOptions.FastOnly : 0);

    /// <summary>READ errors must be structured once structured replies are on, even early ones.</summary>
    public ValueTask SendErrorAsync(NbdRequest request, NbdError error, string message)
    {
        if (!structuredReplies || request.Command != NbdCommand.Read) return SendSimpleAsync(request.Cookie, error);
        return SendErrorChunkAsync(request.Cookie, error, message);
    }

    private ValueTask SendSimpleAsync(ulong cookie, NbdError error, bool flush = true)
    {
        var reply = new byte[NbdLimits.SimpleReplyHeaderLength];
        ReplyEncoder.SimpleReply(reply, error, cookie);
        return output.SendAsync(reply, flush: flush);
    }

    private ValueTask SendErrorChunkAsync(ulong cookie, NbdError error, string message)
    {
        byte[] text = Encoding.UTF8.GetBytes(message.Length > 256 ? message[..256] : message);
        var chunk = new byte[NbdLimits.ChunkHeaderLength + 6 + text.Length];
        ReplyEncoder.ChunkHeader(chunk, ReplyFlags.Done, ChunkType.Error, cookie, (uint)(6 + text.Length));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(20), (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(chunk.AsSpan(24), (ushort)text.Length);
        text.CopyTo(chunk, 26);
        return output.SendAsync(chunk);
    }

    /// <returns>False if a read failed (an error reply was sent).</returns>
    private async ValueTask<bool> ReadAsync(NbdRequest request, bool flush)
    {
        long offset = (long)request.Offset;
        int length = (int)request.Length;
        if (!structuredReplies)
        {
            return await SendReadDataAsync(request.Cookie, offset, length, NbdLimits.SimpleReplyHeaderLength, ReplyFlags.Done, flush).ConfigureAwait(false);
        }

        IReadOnlyList<Extent> extents = request.Has(CommandFlags.DontFragment) || length < HoleProbeThreshold || !device.Capabilities.CanExtents
            ? [new Extent(offset, length, ExtentFlags.Data)]
            : await ContentExtentsAsync(offset, length).ConfigureAwait(false);

        for (int i = 0; i < extents.Count; i++)
        {
            var extent = extents[i];
            var flags = i == extents.Count - 1 ? ReplyFlags.Done : ReplyFlags.None;
            if ((extent.Flags & ExtentFlags.Zero) != 0)
            {
                var hole = new byte[NbdLimits.ChunkHeaderLength + 12];
                ReplyEncoder.ChunkHeader(hole, flags, ChunkType.OffsetHole, request.Cookie, 12);
                BinaryPrimitives.WriteUInt64BigEndian(hole.AsSpan(20), (ulong)extent.Offset);
                BinaryPrimitives.WriteUInt32BigEndian(hole.AsSpan(28), (uint)extent.Length);
                await output.SendAsync(hole, flush: flush).ConfigureAwait(false);
            }
            else if (!await SendReadDataAsync(request.Cookie, extent.Offset, (int)extent.Length, NbdLimits.ChunkHeaderLength + 8, flags, flush).ConfigureAwait(false))
            {
                return false; // the error chunk ended the reply
            }
        }
        return true;
    }

    /// <summary>Extents of the range merged into runs of "reads as zero" and "has data".</summary>
    private async ValueTask<IReadOnlyList<Extent>> ContentExtentsAsync(long offset, long length)
    {
        var merged = new List<Extent>();
        long end = offset + length;
        long position = offset;
        while (position < end)
        {
            foreach (var extent in await device.GetExtentsAsync(position, end - position).ConfigureAwait(false))
            {
                var flags = extent.Flags & ExtentFlags.Zero;
                long length2 = Math.Min(extent.End, end) - extent.Offset;
                if (merged.Count > 0 && merged[^1].Flags == flags)
                    merged[^1] = merged[^1] with { Length = merged[^1].Length + length2 };
                else
                    merged.Add(new Extent(extent.Offset, length2, flags));
                position = extent.Offset + length2;
            }
        }
        return merged;
    }

    /// <summary>Reads into a buffer that leaves room for the reply header, then sends both in one write.</summary>
    /// <returns>False if the read failed and an error reply was sent instead.</returns>
    private async ValueTask<bool> SendReadDataAsync(ulong cookie, long offset, int length, int headerLength, ReplyFlags flags, bool flush)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(headerLength + length);
        try
        {
            try
            {
                await device.ReadAsync(offset, buffer.AsMemory(headerLength, length)).ConfigureAwait(false);
            }
            catch (BlockDeviceException e)
            {
                NbdLog.DeviceFailed(logger, NbdCommand.Read, (ulong)offset, (uint)length, e.Error, e.Message);
                if (structuredReplies) await SendErrorChunkAsync(cookie, ErrorMapping.ToWire(e.Error), e.Message).ConfigureAwait(false);
                else await SendSimpleAsync(cookie, ErrorMapping.ToWire(e.Error)).ConfigureAwait(false);
                return false;
            }

            if (structuredReplies)
            {
                ReplyEncoder.ChunkHeader(buffer, flags, ChunkType.OffsetData, cookie, (uint)(8 + length));
                BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(NbdLimits.ChunkHeaderLength), (ulong)offset);
            }
            else
            {
                ReplyEncoder.SimpleReply(buffer, NbdError.None, cookie);
            }
            await output.SendAsync(buffer.AsMemory(0, headerLength + length), flush: flush).ConfigureAwait(false);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async ValueTask BlockStatusAsync(NbdRequest request, bool flush)
    {
        IReadOnlyList<Extent> extents = device.Capabilities.CanExtents
            ? await device.GetExtentsAsync((long)request.Offset, request.Length).ConfigureAwait(false)
            : [new Extent((long)request.Offset, request.Length, ExtentFlags.Data)];
        int count = request.Has(CommandFlags.ReqOne) ? 1 : extents.Count;

        var chunk = new byte[NbdLimits.ChunkHeaderLength + 4 + 8 * count];
        ReplyEncoder.ChunkHeader(chunk, ReplyFlags.Done, ChunkType.BlockStatus, request.Cookie, (uint)(4 + 8 * count));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(20), NbdLimits.BaseAllocationId);
        for (int i = 0; i < count; i++)
        {
            // Extents lie inside the request, whose length fits in a u32.
            var descriptor = chunk.AsSpan(24 + 8 * i);
            BinaryPrimitives.WriteUInt32BigEndian(descriptor, (uint)Math.Min(extents[i].Length, request.Length));
            BinaryPrimitives.WriteUInt32BigEndian(descriptor[4..], (uint)extents[i].Flags); // HOLE=1, ZERO=2 as on the wire
        }
        await output.SendAsync(chunk, flush: flush).ConfigureAwait(false);
    }
}
