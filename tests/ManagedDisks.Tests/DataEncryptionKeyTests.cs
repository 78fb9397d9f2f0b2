using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ManagedDisks.Encryption;

namespace ManagedDisks.Tests;

public unsafe class DataEncryptionKeyTests
{
    private static byte[] Copy(DataEncryptionKey key) => key.UseKey(0, static (bytes, _) => bytes.ToArray());

    [Test]
    public void FromBytesCopiesTheKey()
    {
        byte[] source = RandomNumberGenerator.GetBytes(DataEncryptionKey.Length);
        byte[] original = (byte[])source.Clone();
        using var key = DataEncryptionKey.FromBytes(source);
        CryptographicOperations.ZeroMemory(source); // what a caller does with its own copy
        Assert.That(Copy(key), Is.EqualTo(original));
    }

    [TestCase(0)]
    [TestCase(32)]
    [TestCase(63)]
    [TestCase(65)]
    public void FromBytesRejectsOtherLengths(int length)
    {
        var ex = Assert.Throws<ArgumentException>(() => DataEncryptionKey.FromBytes(new byte[length]));
        Assert.That(ex!.ParamName, Is.EqualTo("key"));
        Assert.That(ex.Message, Does.Contain("64 bytes").And.Contain($"got {length}"));
    }

    [Test]
    public void GenerateGivesDistinctRandomKeys()
    {
        using var a = DataEncryptionKey.Generate();
        using var b = DataEncryptionKey.Generate();
        byte[] bytesA = Copy(a), bytesB = Copy(b);
        Assert.That(bytesA, Has.Length.EqualTo(64));
        Assert.That(bytesA, Is.Not.EqualTo(bytesB));
        Assert.That(bytesA.AsSpan(0, 32).SequenceEqual(bytesA.AsSpan(32)), Is.False);
        Assert.That(bytesA.Any(x => x != 0), Is.True);
    }

    [Test]
    public void UseKeyLendsTheBytesToBothOverloads()
    {
        byte[] source = RandomNumberGenerator.GetBytes(64);
        using var key = DataEncryptionKey.FromBytes(source);
        byte[]? seen = null;
        key.UseKey(static (bytes, state) => ((Action<byte[]>)state!)(bytes.ToArray()), (Action<byte[]>)(b => seen = b));
        Assert.That(seen, Is.EqualTo(source));
        Assert.That(key.UseKey(5, static (bytes, add) => bytes[0] + add), Is.EqualTo(source[0] + 5));
    }

    [Test]
    public void UseKeyRejectsANullCallback()
    {
        using var key = DataEncryptionKey.Generate();
        Assert.Throws<ArgumentNullException>(() => key.UseKey(null!, null));
        Assert.Throws<ArgumentNullException>(() => key.UseKey<int, int>(0, null!));
    }

    [Test]
    public void UseKeyAfterDisposeThrows()
    {
        var key = DataEncryptionKey.Generate();
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => key.UseKey(static (_, _) => { }, null));
        Assert.Throws<ObjectDisposedException>(() => key.UseKey(0, static (bytes, _) => bytes.Length));
        Assert.DoesNotThrow(key.Dispose, "a second Dispose is harmless");
    }

    [Test]
    public void TheMemoryIsLockedWhereTheSystemAllows()
    {
        using var key = DataEncryptionKey.Generate();
        // mlock may fail under a tight RLIMIT_MEMLOCK; the key still works then. Report, don't fail.
        TestContext.Out.WriteLine($"key memory locked: {key.IsMemoryLocked}");
        Assert.That(Copy(key), Has.Length.EqualTo(64));
    }

    /// <summary>
    /// The key's memory is zero after Dispose. Observed through memory the test owns (the handle
    /// zeroes it but does not free it), so nothing reads freed memory.
    /// </summary>
    [Test]
    public void DisposeZeroesTheKeyBytes()
    {
        byte* memory = (byte*)NativeMemory.Alloc(DataEncryptionKey.Length);
        try
        {
            var bytes = new Span<byte>(memory, DataEncryptionKey.Length);
            RandomNumberGenerator.Fill(bytes);
            byte[] expected = bytes.ToArray();
            var key = new DataEncryptionKey(SecureMemoryHandle.WrapUnownedForTesting(memory, DataEncryptionKey.Length));
            Assert.That(Copy(key), Is.EqualTo(expected));

            key.Dispose();
            Assert.That(bytes.ToArray(), Is.All.Zero);
        }
        finally
        {
            NativeMemory.Free(memory);
        }
    }

    /// <summary>A Dispose during UseKey (another thread, or the callback itself) waits for the lender.</summary>
    [Test]
    public void DisposeDuringUseKeyZeroesOnlyAfterTheCallbackReturns()
    {
        byte* memory = (byte*)NativeMemory.Alloc(DataEncryptionKey.Length);
        try
        {
            var bytes = new Span<byte>(memory, DataEncryptionKey.Length);
            bytes.Fill(0xA5);
            var key = new DataEncryptionKey(SecureMemoryHandle.WrapUnownedForTesting(memory, DataEncryptionKey.Length));
            bool intactAfterDispose = key.UseKey(key, static (lent, self) =>
            {
                self.Dispose();
                return lent.IndexOfAnyExcept((byte)0xA5) < 0;
            });
            Assert.That(intactAfterDispose, Is.True, "the lent span stays valid until the callback returns");
            Assert.That(bytes.ToArray(), Is.All.Zero);
            Assert.Throws<ObjectDisposedException>(() => Copy(key));
        }
        finally
        {
            NativeMemory.Free(memory);
        }
    }

    [Test]
    public void SecureMemoryIsPageAlignedAndStartsZeroed()
    {
        using var memory = SecureMemoryHandle.Allocate(100);
        Assert.That((long)memory.Pointer % Environment.SystemPageSize, Is.Zero);
        Assert.That(memory.DangerousSpan.Length, Is.EqualTo(100));
        Assert.That(memory.DangerousSpan.ToArray(), Is.All.Zero);
        Assert.Throws<ArgumentOutOfRangeException>(() => SecureMemoryHandle.Allocate(0));
    }
}
