namespace ManagedDisks.Encryption;

/// <summary>
/// Serialises writers whose ranges share a sector, so read-modify-write of a partial sector
/// never loses a concurrent writer's bytes. Striped by 64 KiB region; a range takes its stripes
/// in ascending order, so two ranges can never deadlock.
/// </summary>
internal sealed class SectorLocks
{
    private const int RegionShift = 16;
    private const int StripeCount = 1024;
    private readonly SemaphoreSlim[] _stripes = Enumerable.Range(0, StripeCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public async ValueTask<Releaser> LockAsync(long offset, long length)
    {
        long firstRegion = offset >> RegionShift;
        long lastRegion = (offset + length - 1) >> RegionShift;
        int[] stripes = lastRegion - firstRegion + 1 >= StripeCount
            ? Enumerable.Range(0, StripeCount).ToArray()
            : Enumerable.Range(0, (int)(lastRegion - firstRegion + 1)).Select(i => (int)((firstRegion + i) % StripeCount)).Distinct().Order().ToArray();
        foreach (int stripe in stripes) await _stripes[stripe].WaitAsync().ConfigureAwait(false);
        return new Releaser(this, stripes);
    }

    public readonly struct Releaser(SectorLocks owner, int[] stripes) : IDisposable
    {
        public void Dispose()
        {
            for (int i = stripes.Length - 1; i >= 0; i--) owner._stripes[stripes[i]].Release();
        }
    }
}
