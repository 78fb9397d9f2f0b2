using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>
/// Native memory for key material (a DEK, an expanded key schedule). It is page-aligned and a
/// whole number of pages, so that mlock/munlock of one buffer never pins or unpins another's page;
/// locked in RAM where RLIMIT_MEMLOCK allows, so it is not written to swap (failure is ignored:
/// the key still works, it is merely swappable); excluded from core dumps; zeroed before it is
/// unlocked and freed.
/// </summary>
/// <remarks>
/// A <see cref="SafeHandle"/> for two reasons: a buffer nobody disposed is still zeroed by the
/// critical finalizer, and a lender (<see cref="DataEncryptionKey.UseKey"/>) can hold a reference
/// (<see cref="SafeHandle.DangerousAddRef"/>) so a concurrent Dispose cannot free the memory under it.
/// </remarks>
internal sealed unsafe partial class SecureMemoryHandle : SafeHandle
{
    private const int MadvDontDump = 16;
    private const int MadvDoDump = 17;

    private readonly nuint _allocatedBytes;
    private readonly bool _locked;
    private readonly bool _ownsMemory;

    private SecureMemoryHandle(int length, nuint allocatedBytes, bool locked, bool ownsMemory)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        Length = length;
        _allocatedBytes = allocatedBytes;
        _locked = locked;
        _ownsMemory = ownsMemory;
    }

    /// <summary>The usable length in bytes (the allocation is rounded up to whole pages).</summary>
    public int Length { get; }

    /// <summary>Whether mlock succeeded (false when RLIMIT_MEMLOCK is exhausted).</summary>
    public bool IsLocked => _locked;

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>The memory; valid only while the handle is open and referenced.</summary>
    public byte* Pointer => (byte*)handle;

    /// <summary>The memory as a span; valid only while the handle is open and referenced.</summary>
    public Span<byte> DangerousSpan => new((void*)handle, Length);

    /// <summary>Allocates <paramref name="length"/> zeroed bytes of locked, undumpable memory.</summary>
    public static SecureMemoryHandle Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        nuint page = (nuint)Environment.SystemPageSize;
        nuint size = ((nuint)length + page - 1) & ~(page - 1);
        void* memory = NativeMemory.AlignedAlloc(size, page);
        NativeMemory.Clear(memory, size);
        bool locked = MLock(memory, size) == 0;
        _ = MAdvise(memory, size, MadvDontDump);
        var result = new SecureMemoryHandle(length, size, locked, ownsMemory: true);
        result.SetHandle((IntPtr)memory);
        return result;
    }

    /// <summary>
    /// Wraps memory the caller owns: release zeroes it but neither unlocks nor frees it. Lets a
    /// test observe that the bytes are zero after Dispose without reading freed memory.
    /// </summary>
    internal static SecureMemoryHandle WrapUnownedForTesting(byte* memory, int length)
    {
        var result = new SecureMemoryHandle(length, (nuint)length, locked: false, ownsMemory: false);
        result.SetHandle((IntPtr)memory);
        return result;
    }

    protected override bool ReleaseHandle()
    {
        void* memory = (void*)handle;
        CryptographicOperations.ZeroMemory(new Span<byte>(memory, checked((int)_allocatedBytes)));
        if (_ownsMemory)
        {
            _ = MAdvise(memory, _allocatedBytes, MadvDoDump);
            if (_locked) _ = MUnlock(memory, _allocatedBytes);
            NativeMemory.AlignedFree(memory);
        }
        return true;
    }

    [LibraryImport("libc", EntryPoint = "mlock")]
    private static partial int MLock(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "munlock")]
    private static partial int MUnlock(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int MAdvise(void* address, nuint length, int advice);
}
