namespace ManagedDisks.Nbd;

/// <summary>
/// Bounds the bytes a connection holds for requests not yet answered. Only the reading loop
/// acquires, so when the budget is spent the connection stops reading and TCP pushes back on
/// the client instead of the daemon buffering without limit.
/// </summary>
internal sealed class InFlightBudget(long capacity)
{
    private readonly long _capacity = capacity;
    private readonly object _gate = new();
    private long _available = capacity;
    private long _waitingFor;
    private TaskCompletionSource? _waiter;

    /// <summary>Bytes a request of this size is charged; a request larger than the budget takes all of it.</summary>
    public long Charge(long bytes) => Math.Clamp(bytes, 512, _capacity);

    public ValueTask AcquireAsync(long charge)
    {
        lock (_gate)
        {
            if (_available >= charge)
            {
                _available -= charge;
                return ValueTask.CompletedTask;
            }
            _waitingFor = charge;
            _waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return new ValueTask(_waiter.Task);
        }
    }

    public void Release(long charge)
    {
        TaskCompletionSource? wake = null;
        lock (_gate)
        {
            _available += charge;
            if (_waiter is not null && _available >= _waitingFor)
            {
                _available -= _waitingFor;
                wake = _waiter;
                _waiter = null;
            }
        }
        wake?.TrySetResult();
    }
}
