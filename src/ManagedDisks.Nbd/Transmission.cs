using System.Buffers;
using System.IO.Pipelines;
using ManagedDisks.BlockDevices;
using ManagedDisks.Nbd.Wire;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Nbd;

/// <summary>
/// The transmission phase of one connection: frames requests, validates them, runs them
/// concurrently on the device and lets replies go out in completion order. The in-flight
/// budget is the only buffer: when it is spent we stop reading the socket.
/// </summary>
internal sealed class Transmission
{
    private readonly PipeReader _input;
    private readonly ReplyChannel _output;
    private readonly Session _session;
    private readonly IBlockDevice _device;
    private readonly BlockDeviceCapabilities _caps;
    private readonly ILogger _logger;
    private readonly string _peer;
    private readonly InFlightBudget _budget;
    private readonly RequestHandler _handler;
    private readonly TimeSpan _shutdownGrace;
    private volatile bool _stopping;

    // Starts at one for the reading loop itself, so "drained" fires only after it has stopped.
    private int _inFlight = 1;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Transmission(PipeReader input, ReplyChannel output, Session session, NbdServerOptions options, ILogger logger, string peer)
    {
        _input = input;
        _output = output;
        _session = session;
        _device = session.Export.Device;
        _caps = _device.Capabilities;
        _logger = logger;
        _peer = peer;
        _budget = new InFlightBudget(options.MaxInFlightBytesPerConnection);
        _shutdownGrace = options.ShutdownGrace;
        _handler = new RequestHandler(_device, output, session.StructuredReplies, session.Export.Name, logger);
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        _output.Broken += _input.CancelPendingRead;
        // On stop, requests that still arrive get ESHUTDOWN (a client must then disconnect
        // softly); after a grace period the connection is closed whatever the client does.
        using var registration = stopping.Register(() =>
        {
            _stopping = true;
            _ = Task.Delay(_shutdownGrace).ContinueWith(_ => _input.CancelPendingRead(), TaskScheduler.Default);
        });
        try
        {
            await ReadRequestsAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The client went away mid-frame; what is in flight still finishes below.
        }
        finally
        {
            Complete();
        }
        // DISC and EOF alike: finish outstanding requests before closing (spec, NBD_CMD_DISC).
        await _drained.Task.ConfigureAwait(false);
    }

    private async Task ReadRequestsAsync()
    {
        while (true)
        {
            ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled) return;
            ReadOnlySequence<byte> buffer = result.Buffer;
            bool stop = false;
            try
            {
                while (!stop)
                {
                    var status = RequestParser.TryParse(buffer, _caps.MaximumPayload, out var request, out var payload, out var consumed);
                    if (status == ParseStatus.NeedMoreData) break;
                    if (status == ParseStatus.BadMagic)
                    {
                        // The framing is lost; like nbdkit and nbd-server, hang up.
                        NbdLog.BadRequestMagic(_logger, _peer);
                        return;
                    }
                    if (status == ParseStatus.PayloadTooLarge)
                    {
                        NbdLog.PayloadTooLarge(_logger, _peer, request.Length, _caps.MaximumPayload);
                        return;
                    }
                    if (request.Command == NbdCommand.Disconnect)
                    {
                        buffer = buffer.Slice(consumed);
                        return;
                    }
                    if (_stopping)
                    {
                        buffer = buffer.Slice(consumed);
                        NbdMetrics.RequestDone(_session.Export.Name, request.Command, request.Length, System.Diagnostics.Stopwatch.GetTimestamp(), NbdError.Shutdown);
                        await _handler.SendErrorAsync(request, NbdError.Shutdown, "the server is shutting down").ConfigureAwait(false);
                        continue;
                    }

                    long charge = _budget.Charge(request.Command is NbdCommand.Read or NbdCommand.Write ? request.Length : 0);
                    await _budget.AcquireAsync(charge).ConfigureAwait(false);

                    if (RunsInline(request))
                    {
                        // Served on this loop and answered in one send with the rest of the batch:
                        // a pipelining client's small requests cost no thread hop and one syscall.
                        await RunInlineAsync(request, payload, charge).ConfigureAwait(false);
                    }
                    else
                    {
                        byte[]? data = null;
                        if (request.Command == NbdCommand.Write)
                        {
                            // Copied out before AdvanceTo: nothing may refer into the pipe's buffer afterwards.
                            data = ArrayPool<byte>.Shared.Rent((int)request.Length);
                            payload.CopyTo(data);
                        }
                        Dispatch(request, data, charge);
                    }
                    buffer = buffer.Slice(consumed);
                    stop = _output.IsBroken;
                }
            }
            finally
            {
                _input.AdvanceTo(buffer.Start, buffer.End);
                // Inline replies wait here to go out as one batch: send them on every way out of
                // the batch, or a READ pipelined with DISC (or a bad frame) loses its reply.
                await _output.FlushAsync().ConfigureAwait(false);
            }
            if (stop || result.IsCompleted) return;
        }
    }

    /// <summary>
    /// Small requests the device answers from memory or the page cache. Anything that may wait
    /// on the disk (FLUSH, FUA) or move a lot of data runs concurrently instead.
    /// </summary>
    private static bool RunsInline(in NbdRequest request) =>
        !request.Has(CommandFlags.Fua) && request.Command switch
        {
            NbdCommand.Read or NbdCommand.Write => request.Length <= InlineLimit,
            NbdCommand.BlockStatus or NbdCommand.Cache => true,
            _ => false,
        };

    private const int InlineLimit = 128 * 1024;

    private async ValueTask RunInlineAsync(NbdRequest request, ReadOnlySequence<byte> payload, long charge)
    {
        byte[]? copy = null;
        try
        {
            var (error, reason) = RequestValidator.Validate(request, _session.Flags, _caps, _device.Size, _session.BaseAllocationSelected);
            if (error != NbdError.None)
            {
                NbdLog.RequestRejected(_logger, _peer, request.Command, request.Offset, request.Length, error, reason!);
                NbdMetrics.RequestDone(_session.Export.Name, request.Command, request.Length, System.Diagnostics.Stopwatch.GetTimestamp(), error);
                await _handler.SendErrorAsync(request, error, reason!).ConfigureAwait(false);
                return;
            }
            ReadOnlyMemory<byte> data = default;
            if (request.Command == NbdCommand.Write)
            {
                if (payload.IsSingleSegment) data = payload.First;
                else
                {
                    copy = ArrayPool<byte>.Shared.Rent((int)request.Length);
                    payload.CopyTo(copy);
                    data = copy.AsMemory(0, (int)request.Length);
                }
            }
            await _handler.HandleAsync(request, data, flush: false).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            NbdLog.RequestFailed(_logger, _peer, e);
            await _handler.SendErrorAsync(request, NbdError.Io, "internal error").ConfigureAwait(false);
        }
        finally
        {
            if (copy is not null) ArrayPool<byte>.Shared.Return(copy);
            _budget.Release(charge);
        }
    }

    private void Dispatch(NbdRequest request, byte[]? data, long charge)
    {
        Interlocked.Increment(ref _inFlight);
        var (error, reason) = RequestValidator.Validate(request, _session.Flags, _caps, _device.Size, _session.BaseAllocationSelected);
        if (error != NbdError.None)
        {
            NbdLog.RequestRejected(_logger, _peer, request.Command, request.Offset, request.Length, error, reason!);
            NbdMetrics.RequestDone(_session.Export.Name, request.Command, request.Length, System.Diagnostics.Stopwatch.GetTimestamp(), error);
            _ = FinishAsync(_handler.SendErrorAsync(request, error, reason!), data, charge);
            return;
        }
        _ = Task.Run(() => FinishAsync(_handler.HandleAsync(request, data.AsMemory(0, (int)(data is null ? 0 : request.Length))), data, charge));
    }

    private async Task FinishAsync(ValueTask work, byte[]? data, long charge)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            NbdLog.RequestFailed(_logger, _peer, e);
        }
        finally
        {
            if (data is not null) ArrayPool<byte>.Shared.Return(data);
            _budget.Release(charge);
            Complete();
        }
    }

    private void Complete()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0) _drained.TrySetResult();
    }
}
