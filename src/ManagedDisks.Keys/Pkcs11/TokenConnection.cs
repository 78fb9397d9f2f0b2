using System.Collections.Concurrent;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// The token a store uses: found by label (or slot id), logged in with the user PIN, and a pool
/// of sessions. A PKCS#11 session runs one operation at a time, so each call rents a session for
/// its duration: calls on several threads run on several sessions, and the token (which locks
/// for itself, CKF_OS_LOCKING_OK) serves them. When the token goes away (removed, reset) the
/// pooled sessions are dropped, the token is looked up again (it may come back in another slot)
/// and the call runs once more.
/// </summary>
internal sealed class TokenConnection : IDisposable
{
    // PINs the token refused, by module and token: an HSM locks its user PIN after a few wrong
    // tries, and the daemon reopens the store at every key poll; the same wrong PIN is not tried
    // again by this process until the pin file holds another one.
    private static readonly ConcurrentDictionary<string, string> RefusedPins = new(StringComparer.Ordinal);

    private readonly string _storeName;
    private readonly Pkcs11StoreOptions _options;
    private readonly byte[] _pin; // pinned, zeroed on dispose
    private readonly ConcurrentBag<ISession> _idle = [];
    private readonly object _gate = new();
    private Pkcs11Module? _module;
    private ISlot? _slot;
    private bool _disposed;
    private int _rented; // sessions out of the pool, in use by calls now

    public TokenConnection(string storeName, Pkcs11StoreOptions options, byte[] pin)
    {
        _storeName = storeName;
        _options = options;
        _pin = pin;
    }

    public Pkcs11InteropFactories Factories => _module?.Factories ?? throw new InvalidOperationException("not connected");

    /// <summary>
    /// Runs <paramref name="work"/> on a logged-in session, reconnecting once if the token went away.
    /// </summary>
    /// <exception cref="Pkcs11Problem">The token cannot be used (unreachable, PIN refused).</exception>
    /// <exception cref="Pkcs11Exception">The operation itself failed (the caller says what that means).</exception>
    public T Use<T>(Func<ISession, T> work)
    {
        for (int attempt = 0; ; attempt++)
        {
            var session = Rent();
            try
            {
                T result = work(session);
                _idle.Add(session);
                return result;
            }
            catch (Pkcs11Exception e) when (Pkcs11Errors.IsConnectionLost(e.RV))
            {
                Reset(session);
                if (attempt > 0)
                    throw new Pkcs11Problem(KeyState.Unreachable, $"key store '{_storeName}': {_options.TokenDescription} went away during {e.Method} ({Pkcs11Errors.Describe(e.RV)}); check that the HSM is present and working", e);
            }
            catch
            {
                _idle.Add(session); // the session is sound; the operation failed
                throw;
            }
            finally
            {
                Interlocked.Decrement(ref _rented);
            }
        }
    }

    private ISession Rent()
    {
        Interlocked.Increment(ref _rented);
        try { return RentSession(); }
        catch
        {
            Interlocked.Decrement(ref _rented);
            throw;
        }
    }

    private ISession RentSession()
    {
        if (_idle.TryTake(out var idle)) return idle;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var slot = _slot ??= FindSlot();
            string pinHash = PinKey();
            if (RefusedPins.TryGetValue(SlotKey(), out string? refused) && refused == pinHash)
                throw PinRefused("(refused before; not tried again until pin_file changes, so the HSM does not lock the PIN)");
            ISession session;
            try { session = slot.OpenSession(SessionType.ReadWrite); }
            catch (Pkcs11Exception e)
            {
                _slot = null;
                throw new Pkcs11Problem(KeyState.Unreachable, $"key store '{_storeName}': cannot open a session with {_options.TokenDescription}: {Pkcs11Module.Message(e)}", e);
            }
            try
            {
                // Login state belongs to the token for the whole application: the first session logs in, later ones are already.
                session.Login(CKU.CKU_USER, _pin);
            }
            catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
            {
            }
            catch (Pkcs11Exception e)
            {
                CloseQuietly(session);
                if (Pkcs11Errors.IsPinRefused(e.RV))
                {
                    RefusedPins[SlotKey()] = pinHash;
                    throw PinRefused(Pkcs11Errors.Describe(e.RV));
                }
                _slot = null;
                throw new Pkcs11Problem(KeyState.Unreachable, $"key store '{_storeName}': cannot log in to {_options.TokenDescription}: {Pkcs11Module.Message(e)}", e);
            }
            RefusedPins.TryRemove(SlotKey(), out _);
            return session;
        }
    }

    private Pkcs11Problem PinRefused(string why) => new(KeyState.AccessRevoked,
        $"key store '{_storeName}': {_options.TokenDescription} refused the user PIN in {_options.PinFile} {why}; put the current PIN in that file");

    private ISlot FindSlot()
    {
        if (_module is null)
        {
            _module = Pkcs11Module.Acquire(_options.Module);
            return FindSlot(_module, last: false) ?? FindSlot(Reload(), last: true)!;
        }
        // Seen before and gone now: the module may list it again only after C_Initialize.
        return FindSlot(_module, last: false) ?? FindSlot(Reload(), last: true)!;
    }

    /// <summary>Reloads the module when no session of ours is out (this caller's Rent counts one): theirs would point into the old one.</summary>
    private Pkcs11Module Reload()
    {
        if (Volatile.Read(ref _rented) == 1 && _idle.IsEmpty) _module = Pkcs11Module.Reload(_module!);
        return _module!;
    }

    private ISlot? FindSlot(Pkcs11Module module, bool last)
    {
        List<ISlot> slots;
        try { slots = module.Library.GetSlotList(SlotsType.WithTokenPresent); }
        catch (Pkcs11Exception e)
        {
            throw new Pkcs11Problem(KeyState.Unreachable, $"key store '{_storeName}': the PKCS#11 module {_options.Module} cannot list its slots: {Pkcs11Module.Message(e)}", e);
        }
        var labels = new List<string>();
        foreach (var slot in slots)
        {
            string label;
            try { label = slot.GetTokenInfo().Label.Trim(); }
            catch (Pkcs11Exception) { continue; } // a token leaving as we look
            labels.Add($"slot {slot.SlotId}: '{label}'");
            if (_options.TokenLabel is { } wanted ? label == wanted : slot.SlotId == _options.Slot) return slot;
        }
        if (!last) return null;
        throw new Pkcs11Problem(KeyState.Unreachable,
            $"key store '{_storeName}': {_options.TokenDescription} is not present in {_options.Module} " +
            (labels.Count == 0 ? "(no slot holds a token)" : $"(tokens: {string.Join(", ", labels)})") +
            "; insert or start the HSM, or correct token_label in [[key_store]]");
    }

    /// <summary>The token went away: drop every pooled session (their handles are dead) and find the token again next time.</summary>
    private void Reset(ISession failed)
    {
        lock (_gate)
        {
            CloseQuietly(failed);
            while (_idle.TryTake(out var session)) CloseQuietly(session);
            _slot = null;
        }
    }

    private static void CloseQuietly(ISession session)
    {
        try { session.Dispose(); }
        catch (Exception e) when (e is Pkcs11Exception or UnmanagedException)
        {
            // already closed by the token
        }
    }

    private string SlotKey() => $"{_options.Module}\n{_options.TokenLabel ?? "#" + _options.Slot}";

    // Keyed with a secret of this process: a short PIN's plain hash could be reversed by trying every PIN.
    private static readonly byte[] PinHashKey = RandomNumberGenerator.GetBytes(32);

    private string PinKey() => Convert.ToHexString(HMACSHA256.HashData(PinHashKey, _pin));

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            while (_idle.TryTake(out var session)) CloseQuietly(session); // closing the last session logs out
            _module?.Release();
            _module = null;
            CryptographicOperations.ZeroMemory(_pin);
        }
    }
}
