using ManagedDisks.BlockDevices;

namespace ManagedDisks.Tests;

/// <summary>The gate over a real sparse file; a flush held open by the test stands for a slow request in flight.</summary>
public class GatedDeviceTests
{
    private string _dir = null!;
    private SparseFile _file = null!;
    private HeldFlushes _held = null!;
    private GatedDevice _gate = null!;

    /// <summary>A real file whose flushes wait until the test releases them.</summary>
    private sealed class HeldFlushes(SparseFile file) : IBlockDevice
    {
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public BlockDeviceCapabilities Capabilities => file.Capabilities;
        public long Size => file.Size;
        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) => file.ReadAsync(offset, buffer, cancellationToken);
        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteOptions options, CancellationToken cancellationToken = default) => file.WriteAsync(offset, data, options, cancellationToken);

        public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
        {
            Entered.TrySetResult();
            await Release.Task;
            await file.FlushAsync(cancellationToken);
        }

        public ValueTask TrimAsync(long offset, long length, WriteOptions options, CancellationToken cancellationToken = default) => file.TrimAsync(offset, length, options, cancellationToken);
        public ValueTask ZeroAsync(long offset, long length, ZeroOptions options, CancellationToken cancellationToken = default) => file.ZeroAsync(offset, length, options, cancellationToken);
        public ValueTask CacheAsync(long offset, long length, CancellationToken cancellationToken = default) => file.CacheAsync(offset, length, cancellationToken);
        public ValueTask<IReadOnlyList<Extent>> GetExtentsAsync(long offset, long length, CancellationToken cancellationToken = default) => file.GetExtentsAsync(offset, length, cancellationToken);
        public ValueTask DisposeAsync() => file.DisposeAsync();
    }

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("md-gate-").FullName;
        string path = Path.Combine(_dir, "disk.img");
        SparseFile.CreateIfMissing(path, 1 << 20);
        _file = SparseFile.Open(path);
        _held = new HeldFlushes(_file);
        _gate = new GatedDevice(_held);
    }

    [TearDown]
    public async Task TearDown()
    {
        _held.Release.TrySetResult();
        await _gate.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public async Task APauseWaitsForRequestsInFlightAndHoldsNewOnesUntilResumed()
    {
        var flush = _gate.FlushAsync().AsTask();
        await _held.Entered.Task;
        var pausing = _gate.PauseAsync();
        Assert.That(pausing.IsCompleted, Is.False, "the flush is still running");

        _held.Release.SetResult();
        await flush;
        var pause = await pausing;

        var write = _gate.WriteAsync(0, new byte[4096], WriteOptions.None).AsTask();
        Assert.That(write.IsCompleted, Is.False, "held while paused");
        await pause.DisposeAsync();
        await write;
    }

    [Test]
    public async Task AClosedGateFailsEveryRequestWithTheReasonAfterThoseInFlightFinish()
    {
        var flush = _gate.FlushAsync().AsTask();
        await _held.Entered.Task;
        var closing = _gate.CloseAsync("key kek1 revoked");
        Assert.That(closing.IsCompleted, Is.False);

        var refused = Assert.ThrowsAsync<BlockDeviceException>(async () => await _gate.ReadAsync(0, new byte[512]))!;
        Assert.That((refused.Error, refused.Message), Is.EqualTo((DeviceError.InputOutput, "key kek1 revoked")));

        _held.Release.SetResult();
        await flush;
        await closing;
        Assert.That(_gate.ClosedReason, Is.EqualTo("key kek1 revoked"));
        Assert.ThrowsAsync<BlockDeviceException>(async () => await _gate.PauseAsync());
    }

    [Test]
    public async Task ClosingWhilePausedWakesTheHeldRequestsWithAnError()
    {
        var pause = await _gate.PauseAsync();
        var held = _gate.WriteAsync(0, new byte[4096], WriteOptions.None).AsTask();
        await _gate.CloseAsync("detached");
        var error = Assert.ThrowsAsync<BlockDeviceException>(async () => await held)!;
        Assert.That(error.Message, Is.EqualTo("detached"));
        await pause.DisposeAsync();
    }
}
