using System.Buffers;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>Computes a value from key bytes that are lent only for the duration of the call.</summary>
public delegate TResult KeyFunc<TState, TResult>(ReadOnlySpan<byte> key, TState state)
    where TState : allows ref struct;

/// <summary>
/// A disk's data encryption key: the 64-byte AES-256-XTS key <c>key1 || key2</c> (IEEE 1619-2007
/// section 5.1: key1 encrypts the data, key2 the tweak).
/// </summary>
/// <remarks>
/// The bytes live only in native memory (see <see cref="SecureMemoryHandle"/>): locked where the
/// system allows, zeroed on <see cref="Dispose"/> (or by the finalizer if nobody disposes), never
/// copied into a managed array by this type. They are lent out through <see cref="UseKey"/>; the
/// span must not escape the callback. A <c>byte[]</c> that arrives from elsewhere (PKCS#11, a
/// file) should go through <see cref="FromBytes"/> at once and then be zeroed by its owner.
/// </remarks>
public sealed class DataEncryptionKey : IDisposable
{
    /// <summary>Key length in bytes: two AES-256 keys.</summary>
    public const int Length = 64;

    private readonly SecureMemoryHandle _memory;

    internal DataEncryptionKey(SecureMemoryHandle memory)
    {
        if (memory.Length != Length)
            throw new ArgumentException($"A data encryption key is {Length} bytes; the buffer holds {memory.Length}.", nameof(memory));
        _memory = memory;
    }

    /// <summary>A fresh random key from the operating system's CSPRNG.</summary>
    public static DataEncryptionKey Generate()
    {
        var memory = SecureMemoryHandle.Allocate(Length);
        try
        {
            RandomNumberGenerator.Fill(memory.DangerousSpan);
            return new DataEncryptionKey(memory);
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    /// <summary>Copies <paramref name="key"/> into protected memory; the caller zeroes its own copy.</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not 64 bytes.</exception>
    public static DataEncryptionKey FromBytes(ReadOnlySpan<byte> key)
    {
        if (key.Length != Length)
            throw new ArgumentException(
                $"An AES-256-XTS data encryption key is {Length} bytes (key1 || key2, 32 bytes each); got {key.Length}.",
                nameof(key));
        var memory = SecureMemoryHandle.Allocate(Length);
        key.CopyTo(memory.DangerousSpan);
        return new DataEncryptionKey(memory);
    }

    /// <summary>Whether the key bytes are locked in RAM (mlock succeeded).</summary>
    public bool IsMemoryLocked => _memory.IsLocked;

    /// <summary>Lends the key bytes to <paramref name="action"/> for the duration of the call.</summary>
    /// <exception cref="ObjectDisposedException">The key has been disposed.</exception>
    public void UseKey(ReadOnlySpanAction<byte, object?> action, object? state)
    {
        ArgumentNullException.ThrowIfNull(action);
        UseKey((action, state), static (key, s) =>
        {
            s.action(key, s.state);
            return 0;
        });
    }

    /// <summary>Lends the key bytes to <paramref name="func"/> and returns its result.</summary>
    /// <exception cref="ObjectDisposedException">The key has been disposed.</exception>
    public TResult UseKey<TState, TResult>(TState state, KeyFunc<TState, TResult> func)
        where TState : allows ref struct
    {
        ArgumentNullException.ThrowIfNull(func);
        ObjectDisposedException.ThrowIf(_memory.IsClosed, this);
        bool referenced = false;
        try
        {
            // Holds the memory open even if another thread disposes the key meanwhile.
            _memory.DangerousAddRef(ref referenced);
            return func(_memory.DangerousSpan, state);
        }
        finally
        {
            if (referenced) _memory.DangerousRelease();
        }
    }

    /// <summary>Zeroes and frees the key bytes (after any <see cref="UseKey"/> in progress returns).</summary>
    public void Dispose() => _memory.Dispose();
}
