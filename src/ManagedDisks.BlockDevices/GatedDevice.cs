namespace ManagedDisks.BlockDevices;

/// <summary>
/// A filter that lets its owner hold all I/O still for a moment (a snapshot, a re-encryption
/// step) or end it for good (a revoked key, a detach). Requests already running finish first;
/// <see cref="PauseAsync"/> and <see cref="CloseAsync"/> return only once none is left, so the
/// owner may then copy the file or wipe the key under it.
/// </summary>
public sealed class GatedDevice(IBlockDevice inner) : IBlockDevice
{
    private readonly object _gate = new();
    private readonly SemaphoreSlim _pausers = new(1, 1);
    private int _active;
    private TaskCompletionSource? _resumed; // set while paused: new requests wait for it
    private TaskCompletionSource? _idle;    // set while someone waits for the running requests to finish
    private string? _closedReason;

    public IBlockDevice Inner => inner;
    public BlockDeviceCapabilities Capabilities => inner.Capabilities;
    public long Size => inner.Size;

    /// <summary>Why the device was closed, or null while it serves.</summary>
    public string? ClosedReason
    {
        get { lock (_gate) return _closedReason; }
    }

    /// <summary>
    /// Holds new requests until the returned handle is disposed, after every running request
    /// has finished. One pause at a time; a second waits for the first.
    /// </summary>
    /// <exception cref="BlockDeviceException">The device is closed.</exception>
    public async Task<IAsyncDisposable> PauseAsync(CancellationToken cancellationToken = default)
    {
        await _pausers.WaitAsync(cancellationToken).ConfigureAwait(false);
        Task idle;
        lock (_gate)
        {
            if (_closedReason is { } reason)
            {
                _pausers.Release();
                throw new BlockDeviceException(DeviceError.InputOutput, reason);
            }
            _resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            idle = WhenIdleLocked();
        }
        await idle.ConfigureAwait(false);
        return new Pause(this);
    }

    /// <summary>
    /// From now on every request fails with EIO and <paramref name="reason"/>; returns once the
    /// requests already running have finished. Closing twice keeps the first reason.
    /// </summary>
    public Task CloseAsync(string reason)
    {
        TaskCompletionSource? resumed;
        Task idle;
        lock (_gate)
        {
            _closedReason ??= reason;
            resumed = _resumed; // waiters wake up and see the device closed
            idle = WhenIdleLocked();
        }
        resumed?.TrySetResult();
        return idle;
    }

    private Task WhenIdleLocked()
    {
        if (_active == 0) return Task.CompletedTask;
        _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _idle.Task;
    }

    private void Resume()
    {
        TaskCompletionSource? resumed;
        lock (_gate)
        {
            resumed = _resumed;
            _resumed = null;
        }
        resumed?.TrySetResult();
        _pausers.Release();
    }

    private sealed class Pause(GatedDevice device) : IAsyncDisposable
    {
        private int _disposed;

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) device.Resume();
            return ValueTask.CompletedTask;
        }
    }

    private ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_closedReason is { } reason) throw new BlockDeviceException(DeviceError.InputOutput, reason);
            if (_resumed is null)
            {
                _active++;
                return ValueTask.CompletedTask;
            }
        }
        return WaitAndEnterAsync(cancellationToken);
    }

    private async ValueTask WaitAndEnterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task resumed;
            lock (_gate)
            {
                if (_closedReason is { } reason) throw new BlockDeviceException(DeviceError.InputOutput, reason);
                if (_resumed is null)
                {
                    _active++;
                    return;
                }
                resumed = _resumed.Task;
            }
            await resumed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Exit()
    {
        TaskCompletionSource? idle = null;
        lock (_gate)
        {
            if (--_active == 0 && _idle is not null)
            {
                idle = _idle;
                _idle = null;
            }
        }
        idle?.TrySetResult();
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.WriteAsync(offset, data, options, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.FlushAsync(cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.TrimAsync(offset, length, options, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.ZeroAsync(offset, length, options, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { await inner.CacheAsync(offset, length, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    public async ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try { return await inner.GetExtentsAsync(offset, length, cancellationToken).ConfigureAwait(false); }
        finally { Exit(); }
    }

    /// <summary>Closes the gate and disposes the device below once nothing runs on it.</summary>
    public async ValueTask DisposeAsync()
    {
        await CloseAsync("the disk is closed").ConfigureAwait(false);
        await inner.DisposeAsync().ConfigureAwait(false);
        _pausers.Dispose();
    }
}
