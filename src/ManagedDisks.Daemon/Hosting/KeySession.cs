using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Agent;
using ManagedDisks.Keys.Audit;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// The key stores opened for one piece of work (opening disks, re-wrapping one). Private keys
/// stay loaded only that long; the DEKs then live in the disks' ciphers.
/// </summary>
internal sealed class KeySession : IDisposable
{
    private readonly PlatformKeyStore _platform;
    private readonly Dictionary<string, IKeyStore> _stores;

    private KeySession(PlatformKeyStore platform, Dictionary<string, IKeyStore> stores, KeyAgent agent)
    {
        _platform = platform;
        _stores = stores;
        Agent = agent;
    }

    public KeyAgent Agent { get; }

    /// <summary>An open store by name, or null if it is not configured or did not open.</summary>
    public IKeyStore? Store(string name) => _stores.GetValueOrDefault(name);
    public string PlatformKeyVersion => _platform.KeyVersion;

    /// <exception cref="KeyStoreException">A store cannot be opened.</exception>
    public static KeySession Open(DaemonSettings settings)
    {
        var stores = new Dictionary<string, IKeyStore>();
        PlatformKeyStore? platform = null;
        try
        {
            platform = PlatformKeyStore.OpenOrCreate(settings.PlatformKeyFile, settings.PlatformKeySecretFile);
            foreach (var store in settings.KeyStores) stores[store.Name] = KeyStoreFactory.Open(store);
            return new KeySession(platform, stores, new KeyAgent(stores, platform, AuditLog.Open(settings.AuditLog)));
        }
        catch
        {
            platform?.Dispose();
            foreach (var store in stores.Values) store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the platform key and every store that opens; the others are left out with the
    /// reason, so that one broken store does not hide the state of the keys in the rest.
    /// </summary>
    /// <exception cref="KeyStoreException">The platform key cannot be opened.</exception>
    public static KeySession OpenAvailable(DaemonSettings settings, out IReadOnlyDictionary<string, string> failures)
    {
        var failed = new Dictionary<string, string>();
        var stores = new Dictionary<string, IKeyStore>();
        var platform = PlatformKeyStore.OpenOrCreate(settings.PlatformKeyFile, settings.PlatformKeySecretFile);
        foreach (var store in settings.KeyStores)
        {
            try { stores[store.Name] = KeyStoreFactory.Open(store); }
            catch (KeyStoreException e) { failed[store.Name] = e.Message; }
        }
        failures = failed;
        return new KeySession(platform, stores, new KeyAgent(stores, platform, AuditLog.Open(settings.AuditLog)));
    }

    public void Dispose()
    {
        _platform.Dispose();
        foreach (var store in _stores.Values) store.Dispose();
    }
}
